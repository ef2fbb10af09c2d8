"""Feature and split names shared by ingestion, Transform, Trainer, export and Evaluator."""

# Raw tf.Example features written by ingestion (ImageExampleGen).
IMAGE = "image"  # original encoded bytes (JPEG/PNG/GIF/BMP), never re-encoded
LABEL = "label"  # class name, UTF-8 bytes
PATH = "path"  # source path relative to the data root
FORMAT = "format"  # PIL format name, e.g. b"PNG"
WIDTH = "width"
HEIGHT = "height"

# Transformed features produced by the Transform preprocessing_fn.
IMAGE_XF = "image_xf"  # float32 [H, W, 3], normalised for the model
LABEL_XF = "label_xf"  # int64 class index from the label vocabulary

# Name of the label vocabulary asset exported by tf.Transform (index -> class name).
LABEL_VOCABULARY = "label"

# Example splits ImageExampleGen writes: `train`; `val` only for data that brings its own (train/, val/ and test/
# folders, or a manifest's split column; it replaces the slice the Trainer otherwise carves off train for early
# stopping); `eval` for the Evaluator.
TRAIN_SPLIT = "train"
VALIDATION_SPLIT = "val"
EVAL_SPLIT = "eval"
# Folder names of a pre-split data root's val split (case-insensitive)
VALIDATION_DIR_NAMES = ("val", "valid", "validation")


def transformed_name(key: str) -> str:
    """Name of the transformed counterpart of a raw feature."""
    return f"{key}_xf"
