"""One loaded model version (a "servable" in TF Serving's terms): its signatures, metadata and model calls.

`Servable.load` reads the SignatureDefs from `saved_model.pb` (for metadata exactly as TF Serving reports
it, including `method_name`), loads the SavedModel with `tf.saved_model.load`, and warms it up: the
`serving_default` signature of visionline's contract (one string input `images`) is called on a tiny
PNG, which both proves the version actually works before it takes traffic and yields the class labels
(the `classes` output) that the metadata endpoint adds to TF Serving's signature_def metadata. Then, as TF
Serving with `--enable_model_warmup`, the version's `assets.extra/tf_serving_warmup_requests` is replayed
(`serving.server.model_warmup`); a malformed file or a failing record fails the load.

Model calls convert TensorFlow errors into `ServingError`s with the same status code (an undecodable
image is INVALID_ARGUMENT → HTTP 400); with batching configured each batchable signature gets a `Batcher`.
With `ServingMetrics` given, every model call after warm-up is timed into `runtime_latency`.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, NoReturn

import components.environment  # noqa: F401  (Keras 2 before TensorFlow loads)

# isort: split
import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from google.protobuf.json_format import MessageToDict
from PIL import Image
from tensorflow.core.example import example_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2

from components import features
from components.pusher.serving_layout import saved_model_file
from serving.errors import ServingError, from_tf_error, invalid
from serving.server.config import BatchingConfig
from serving.server.model_warmup import WarmupResult, replay_warmup
from serving.server.prometheus import ServingMetrics
from serving.server.request_batching import Batcher
from serving.server.tensors import SignatureInfo, TensorInfo, check_inputs, classification_results

log = logging.getLogger(__name__)

DEFAULT_SIGNATURE = "serving_default"  # TF Serving's kDefaultServingSignatureDefKey
CLASSIFY_METHOD_NAME = "tensorflow/serving/classify"  # = components.trainer.export.CLASSIFY_METHOD_NAME
REGRESS_METHOD_NAME = "tensorflow/serving/regress"
SERVE_TAG = "serve"


def configure_tf_threads(intra_op: int, inter_op: int) -> None:
    """Size TensorFlow's intra-op and inter-op thread pools (0 leaves TensorFlow's default, one thread per core),
    like TF Serving's `--tensorflow_intra_op_parallelism` / `--tensorflow_inter_op_parallelism`. Must run before
    TensorFlow executes anything in this process; afterwards a different setting is a RuntimeError that says so."""
    threading_config = tf.config.threading
    for kind, wanted, getter, setter in (
            ("intra-op", intra_op, threading_config.get_intra_op_parallelism_threads,
             threading_config.set_intra_op_parallelism_threads),
            ("inter-op", inter_op, threading_config.get_inter_op_parallelism_threads,
             threading_config.set_inter_op_parallelism_threads)):
        if wanted == 0 or getter() == wanted:
            continue
        try:
            setter(wanted)
        except RuntimeError as err:
            raise RuntimeError(f"cannot set TensorFlow's {kind} threads to {wanted}: TensorFlow is already "
                               f"running in this process with {getter() or 'default'} ({err})") from None


def read_signature_defs(version_dir: str) -> dict[str, Any]:
    """The `serve` meta graph's SignatureDef protos, straight from the SavedModel file."""
    path = saved_model_file(version_dir)
    if path is None:
        raise FileNotFoundError(f"{version_dir}: no saved_model.pb")
    saved_model = saved_model_pb2.SavedModel()
    with open(path, "rb") as handle:
        data = handle.read()
    if path.endswith(".pbtxt"):
        text_format.Parse(data.decode("utf-8"), saved_model)
    else:
        saved_model.ParseFromString(data)
    for meta_graph in saved_model.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise ValueError(f"{path}: no meta graph tagged {SERVE_TAG!r}")


def _tiny_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (128, 128, 128)).save(buffer, format="PNG")
    return buffer.getvalue()


def _example_bytes(key: str, value: bytes) -> bytes:
    example = example_pb2.Example()
    example.features.feature[key].bytes_list.value.append(value)
    return example.SerializeToString()


class Servable:
    """A loaded, warmed-up model version. Thread-safe; see the module docstring."""

    def __init__(self, name: str, version: int, path: str, loaded: Any, signature_defs: Mapping[str, Any],
                 batching: BatchingConfig | None = None) -> None:
        self.metrics: ServingMetrics | None = None  # set after warm-up, so warm-up calls are not timed
        self.name = name
        self.version = version
        self.path = path
        self._loaded = loaded
        self._signature_defs = dict(signature_defs)
        self._batching = batching
        self._batchers: dict[str, Batcher] = {}
        self._lock = threading.Lock()
        self.class_labels: tuple[str, ...] | None = None
        self.warmup_result: WarmupResult | None = None  # the warm-up file's replay (None: not replayed)
        self.signatures: dict[str, SignatureInfo] = {}
        for sig_name, proto in sorted(self._signature_defs.items()):
            fn = loaded.signatures.get(sig_name) if loaded is not None else None
            if fn is None:
                continue  # e.g. __saved_model_init_op: listed in metadata, not callable
            self.signatures[sig_name] = SignatureInfo(
                name=sig_name,
                method_name=proto.method_name,
                inputs={k: TensorInfo.from_proto(k, v) for k, v in proto.inputs.items()},
                outputs={k: TensorInfo.from_proto(k, v) for k, v in proto.outputs.items()},
                fn=fn,
            )

    @classmethod
    def load(cls, name: str, version: int, path: str, batching: BatchingConfig | None = None,
             metrics: ServingMetrics | None = None, warmup_iterations: int = 1) -> Servable:
        """Load and warm up `<path>` (a version directory); raises on any problem. `warmup_iterations` > 0
        replays the version's `assets.extra/tf_serving_warmup_requests` that many times per record
        (`serving.server.model_warmup`, TF Serving's `--enable_model_warmup`); 0 skips it."""
        signature_defs = read_signature_defs(path)
        loaded = tf.saved_model.load(path, tags=[SERVE_TAG])
        servable = cls(name, version, path, loaded, signature_defs, batching)
        servable.warmup()
        if warmup_iterations > 0:
            servable.warmup_result = replay_warmup(servable, warmup_iterations)
        servable.metrics = metrics
        return servable

    # ----- signatures and metadata -------------------------------------------------------------------------
    def signature(self, name: str | None) -> SignatureInfo:
        """The callable signature `name` (default `serving_default`); FAILED_PRECONDITION if absent."""
        name = name or DEFAULT_SIGNATURE
        sig = self.signatures.get(name)
        if sig is None:
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{name}" not found.')
        return sig

    def classify_signature(self, name: str | None) -> SignatureInfo:
        """The signature for Classify: `name` if given; else `serving_default` if it classifies, else the one
        signature whose method is `tensorflow/serving/classify` (real TF Serving only tries serving_default)."""
        if not name:
            default = self.signatures.get(DEFAULT_SIGNATURE)
            if default is None or default.method_name != CLASSIFY_METHOD_NAME:
                candidates = [s for s in self.signatures.values() if s.method_name == CLASSIFY_METHOD_NAME]
                if len(candidates) == 1:
                    return candidates[0]
        sig = self.signature(name)
        if sig.method_name != CLASSIFY_METHOD_NAME:
            raise invalid(f"Expected classification signature method_name to be {CLASSIFY_METHOD_NAME}. "
                          f"Was: {sig.method_name}")
        if len(sig.inputs) != 1 or not next(iter(sig.inputs.values())).is_string:
            raise invalid(f"classification signature {sig.name!r} must have exactly one string input")
        return sig

    def regress_signature(self, name: str | None) -> NoReturn:
        """Regress is not implemented by the local server. As TF Serving, a signature that is not a regression
        signature (every signature visionline exports) is INVALID_ARGUMENT and an unknown one
        FAILED_PRECONDITION; a real regression signature is UNIMPLEMENTED (HTTP 501)."""
        sig = self.signature(name)
        if sig.method_name != REGRESS_METHOD_NAME:
            raise invalid(f"Expected regression signature method_name to be {REGRESS_METHOD_NAME}. "
                          f"Was: {sig.method_name}")
        raise ServingError(grpc.StatusCode.UNIMPLEMENTED, f"regress signature {sig.name!r}: Regress is not "
                                                          "implemented by the local server (use TF Serving)")

    def signature_def_map(self) -> Any:
        """A `tensorflow.serving.SignatureDefMap` with every SignatureDef (as TF Serving's metadata)."""
        result = get_model_metadata_pb2.SignatureDefMap()
        for key, proto in self._signature_defs.items():
            result.signature_def[key].CopyFrom(proto)
        return result

    def metadata_json(self) -> dict[str, Any]:
        """REST metadata body: TF Serving's `{"signature_def": {"signature_def": {…}}}` plus `class_labels`."""
        signature_map = MessageToDict(self.signature_def_map(), preserving_proto_field_name=True,
                                      including_default_value_fields=True)
        metadata: dict[str, Any] = {"signature_def": signature_map}
        if self.class_labels is not None:
            metadata["class_labels"] = list(self.class_labels)
        return metadata

    # ----- model calls ---------------------------------------------------------------------------------------
    def run(self, signature: SignatureInfo, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Call the signature now (no batching); TensorFlow errors become `ServingError`s."""
        start = time.perf_counter()
        try:
            outputs = signature.fn(**{k: tf.constant(v) for k, v in inputs.items()})
            result = {k: v.numpy() for k, v in outputs.items()}
        except tf.errors.OpError as err:
            raise from_tf_error(err) from None
        except (TypeError, ValueError) as err:
            raise invalid(f"signature {signature.name!r} rejected the inputs: {err}") from None
        if self.metrics is not None:
            api = "Classify" if signature.method_name == CLASSIFY_METHOD_NAME else "Predict"
            self.metrics.record_runtime(self.name, api, time.perf_counter() - start)
        return result

    def batcher(self, signature: SignatureInfo) -> Batcher | None:
        """The signature's batcher if batching is on and the signature is batchable, else None."""
        if self._batching is None or not signature.batchable:
            return None
        with self._lock:
            batcher = self._batchers.get(signature.name)
            if batcher is None:
                batcher = Batcher(lambda inputs, sig=signature: self.run(sig, inputs), self._batching,
                                  name=f"batch-{self.name}-{self.version}-{signature.name}", metrics=self.metrics)
                self._batchers[signature.name] = batcher
            return batcher

    def predict(self, signature: SignatureInfo, inputs: Mapping[str, np.ndarray],
                output_filter: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
        """Validate and run (through the batcher when enabled); blocking."""
        check_inputs(inputs, signature)
        batcher = self.batcher(signature)
        outputs = batcher.submit(inputs).result() if batcher else self.run(signature, inputs)
        return filter_outputs(outputs, signature, output_filter)

    def classify(self, signature: SignatureInfo, serialized_examples: list[bytes]) -> list[list[tuple[str, float]]]:
        """Classify serialized `tf.train.Example`s with a classification signature; blocking."""
        if not serialized_examples:
            raise invalid("Input is empty: no examples to classify")
        key = next(iter(signature.inputs))
        array = np.empty(len(serialized_examples), dtype=object)
        array[:] = serialized_examples
        outputs = self.predict(signature, {key: array})
        return classification_results(outputs, len(serialized_examples))

    def warmup(self) -> None:
        """Call the signatures of visionline's contract on a tiny PNG (first calls are slow; a version that
        cannot classify a valid image fails here, before taking traffic) and record the class labels."""
        png = _tiny_png()
        sig = self.signatures.get(DEFAULT_SIGNATURE)
        if sig is not None and list(sig.inputs) == ["images"] and sig.inputs["images"].is_string:
            outputs = self.run(sig, {"images": np.array([png], dtype=object)})
            classes = outputs.get("classes")
            if classes is not None and classes.ndim == 2 and classes.dtype.kind in "OS":
                self.class_labels = tuple(c.decode("utf-8", errors="replace") for c in classes[0])
        example = _example_bytes(features.IMAGE, png)
        for sig in self.signatures.values():
            if sig.method_name == CLASSIFY_METHOD_NAME and len(sig.inputs) == 1:
                key = next(iter(sig.inputs))
                try:
                    self.run(sig, {key: np.array([example], dtype=object)})
                except ServingError as err:  # other contracts: warm-up is best effort for these
                    log.debug("warm-up of %s/%s failed: %s", self.version, sig.name, err.message)

    def close(self) -> None:
        """Stop batchers (after their queued requests) and drop the model."""
        with self._lock:
            batchers, self._batchers = list(self._batchers.values()), {}
        for batcher in batchers:
            batcher.close()
        self._loaded = None
        for sig in self.signatures.values():
            sig.fn = None

    def batch_stats(self) -> dict[str, Any]:
        """Batching counters per signature (for tests and benchmarks)."""
        with self._lock:
            return {name: b.stats for name, b in self._batchers.items()}


def filter_outputs(outputs: dict[str, np.ndarray], signature: SignatureInfo,
                   output_filter: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Keep only `output_filter` (all outputs when empty); unknown aliases are INVALID_ARGUMENT."""
    if not output_filter:
        return outputs
    unknown = [name for name in output_filter if name not in outputs]
    if unknown:
        raise invalid(f"output tensor alias not found in signature: {', '.join(unknown)} Outputs expected to be "
                      f"in the set {{{','.join(sorted(signature.outputs))}}}.")
    return {name: outputs[name] for name in output_filter}
