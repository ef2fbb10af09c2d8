"""TF Serving's warm-up file `<version>/assets.extra/tf_serving_warmup_requests`: written with the model, replayed.

The file is a TFRecord of `tensorflow.serving.PredictionLog` protos, the format TF Serving replays at load time
with `--enable_model_warmup` (on by default) and TFX's InfraValidator writes: each record here is a `predict_log`
whose `PredictRequest` calls `serving_default` on real encoded images (visionline's signature takes image bytes,
input `images`). `write_warmup_requests` writes it into an exported SavedModel (the Trainer's export calls it with
a few images of its validation data: the Pusher's inputs are the model and its blessing only, it sees no
examples); the Pusher then copies it with the rest of the version. `read_warmup_requests` reads it back with TF
Serving's rules — at most `MAX_RECORDS` records (`WarmupConsts::kMaxNumRecords`), a record that is not a
`PredictionLog` or a file that is not a TFRecord is an error naming the file and the record — for the local
server's replay and for checks. A missing file is not an error (warm-up data is optional), an empty one yields no
records.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence

import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")  # TF Serving's kRequestsFileName
MAX_RECORDS = 1000  # TF Serving's WarmupConsts::kMaxNumRecords: more fails the load
SERVING_DEFAULT = "serving_default"
IMAGES_INPUT = "images"  # visionline's serving_default input: encoded image bytes, shape [None]
DEFAULT_IMAGES = 4  # warm-up requests the Trainer writes: a few real images, one request each


class WarmupFileError(ValueError):
    """The warm-up file cannot be used (not a TFRecord, a record that is not a PredictionLog, too many records).
    `status` is the gRPC status name TF Serving fails the load with: DATA_LOSS for a file that is not a TFRecord,
    INVALID_ARGUMENT otherwise."""

    def __init__(self, message: str, status: str = "INVALID_ARGUMENT") -> None:
        super().__init__(message)
        self.status = status


def warmup_path(version_dir: str) -> str:
    """`<version_dir>/assets.extra/tf_serving_warmup_requests`."""
    return os.path.join(version_dir, WARMUP_FILE)


def predict_log(images: Sequence[bytes], model_name: str = "", signature: str = SERVING_DEFAULT,
                input_key: str = IMAGES_INPUT) -> prediction_log_pb2.PredictionLog:
    """A `PredictionLog` whose `predict_log.request` calls `signature` on the encoded `images` (one batch)."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name  # TF Serving replays against the version being loaded: the name is a label
    request.model_spec.signature_name = signature
    request.inputs[input_key].CopyFrom(tf.make_tensor_proto(list(images), dtype=tf.string, shape=[len(images)]))
    return prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))


def images_from_examples(serialized_examples: Iterable[bytes], image_key: str,
                         count: int = DEFAULT_IMAGES) -> list[bytes]:
    """The encoded images (bytes feature `image_key`) of the first `count` serialized `tf.Example`s that have
    one; examples without it are skipped."""
    images: list[bytes] = []
    for serialized in serialized_examples:
        values = tf.train.Example.FromString(serialized).features.feature[image_key].bytes_list.value
        if values:
            images.append(values[0])
            if len(images) == count:
                break
    return images


def write_warmup_requests(version_dir: str, images: Sequence[bytes], model_name: str = "") -> str:
    """Write one `predict_log` record per image (a batch of one, the shape of a typical request) into the
    SavedModel at `version_dir`; return the file's path. `images` must be non-empty and at most `MAX_RECORDS`."""
    if not images:
        raise ValueError(f"{version_dir}: no images to write warm-up requests from")
    if len(images) > MAX_RECORDS:
        raise ValueError(f"{version_dir}: {len(images)} warm-up requests exceed TF Serving's maximum of {MAX_RECORDS}")
    path = warmup_path(version_dir)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for image in images:
            writer.write(predict_log([image], model_name).SerializeToString())
    return path


def read_warmup_requests(version_dir: str) -> list[prediction_log_pb2.PredictionLog] | None:
    """The warm-up records of the SavedModel at `version_dir`, in file order; None when it has no warm-up file.

    Raises `WarmupFileError` naming the file (and the record) when the file is not a TFRecord, a record is not a
    `PredictionLog` or sets no log type, or there are more than `MAX_RECORDS` records: TF Serving then fails
    the version's load."""
    path = warmup_path(version_dir)
    if not tf.io.gfile.exists(path):
        return None
    records = []
    try:
        for number, record in enumerate(tf.data.TFRecordDataset(path).as_numpy_iterator(), start=1):
            if number > MAX_RECORDS:
                raise WarmupFileError(f"{path}: number of warm-up records exceeds the maximum ({MAX_RECORDS})")
            try:
                log = prediction_log_pb2.PredictionLog.FromString(record)
            except DecodeError as err:
                raise WarmupFileError(f"{path}: record {number} is not a tensorflow.serving.PredictionLog "
                                      f"({err})") from None
            if log.WhichOneof("log_type") is None:
                raise WarmupFileError(f"{path}: record {number} is a PredictionLog without a log type "
                                      "(expected predict_log, classify_log, …)")
            records.append(log)
    except tf.errors.DataLossError as err:
        detail = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", err.message or "").strip().splitlines()
        raise WarmupFileError(f"{path}: not a valid TFRecord file after {len(records)} record(s) "
                              f"({detail[0] if detail else 'data loss'}); verify the warm-up data is in TFRecord "
                              "format", status="DATA_LOSS") from None
    return records
