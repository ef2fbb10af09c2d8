"""visionline components: ingestion (custom ExampleGen), preprocessing, model, training, export and metrics.

Importing this package pins Keras 2 (`TF_USE_LEGACY_KERAS=1`), which tf.Transform requires; it must happen
before TensorFlow is first imported, so every entry point imports `components` (or `pipeline`) first.
"""

import os
import warnings

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Google client libraries pulled in by TFX warn about future Python/grpcio support on every import.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")
