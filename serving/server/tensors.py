"""Tensors on the wire: TF Serving's REST JSON encoding and gRPC `TensorProto`s, to and from numpy.

Owns the signature description (`TensorInfo`, `SignatureInfo`, read from `saved_model.pb`), input validation
against it, and the JSON formats of TF Serving's REST API
(https://www.tensorflow.org/tfx/serving/api_rest):

* predict, row format: `{"signature_name": …, "instances": [row, …]}` → `{"predictions": [row, …]}`; a row is
  the value of the single input, or an object `{input_name: value}`; bytes are `{"b64": "…"}`;
* predict, columnar: `{"inputs": value | {input_name: value}}` → `{"outputs": value | {output_name: value}}`;
* classify: `{"examples": [{feature: value}], "context": {…}}` → `{"results": [[[label, score], …], …]}`.

String outputs are written as JSON strings when they are valid UTF-8 (class names); TF Serving writes
`{"b64": …}` only for output keys ending in `_bytes` — so does this module, and additionally for any output
whose bytes are not valid UTF-8 (TF Serving would emit invalid JSON there).
Nothing here evaluates or unpickles client data: JSON is parsed with `json.loads`, tensors with numpy/protobuf.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import components.environment  # noqa: F401  (Keras 2 before TensorFlow loads)

# isort: split
import numpy as np
import tensorflow as tf
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

from serving.errors import invalid

MAX_RANK = 32  # numpy's maximum number of dimensions: deeper JSON nesting is a 400, not a numpy error
DT_STRING = types_pb2.DT_STRING
DT_INVALID = types_pb2.DT_INVALID
_B64_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_")


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of a signature: alias, TensorFlow dtype enum and shape (None dims are unknown)."""

    name: str
    dtype: int
    shape: tuple[int | None, ...] | None  # None = unknown rank

    @property
    def is_string(self) -> bool:
        """True for DT_STRING tensors (encoded images, serialized examples, class names)."""
        return self.dtype == DT_STRING

    @property
    def np_dtype(self) -> np.dtype:
        """The numpy dtype values of this tensor are converted to (object for strings)."""
        if self.is_string:
            return np.dtype(object)
        return np.dtype(tf.dtypes.as_dtype(self.dtype).as_numpy_dtype)

    @property
    def dtype_name(self) -> str:
        """TensorFlow's name of the dtype, e.g. 'string', 'float32'."""
        if self.is_string:
            return "string"
        return tf.dtypes.as_dtype(self.dtype).name

    def describe(self) -> str:
        """e.g. 'string[?]' or 'float32[?,10]'."""
        dims = "<unknown rank>" if self.shape is None else ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.dtype_name}[{dims}]"

    @classmethod
    def from_proto(cls, name: str, proto: Any) -> TensorInfo:
        """From a `tensorflow.TensorInfo` proto of a SignatureDef."""
        shape_proto = proto.tensor_shape
        shape = None if shape_proto.unknown_rank else tuple(None if d.size < 0 else int(d.size)
                                                            for d in shape_proto.dim)
        return cls(name=name, dtype=int(proto.dtype), shape=shape)


@dataclass
class SignatureInfo:
    """A callable signature of a loaded SavedModel."""

    name: str
    method_name: str
    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]
    fn: Callable[..., Any] | None = field(default=None, repr=False)

    @property
    def batchable(self) -> bool:
        """True if every input has a leading, unknown batch dimension (server-side batching can merge rows)."""
        return bool(self.inputs) and all(
            t.shape is not None and len(t.shape) >= 1 and t.shape[0] is None for t in self.inputs.values()
        )


# ----- validation --------------------------------------------------------------------------------------------
def check_inputs(inputs: Mapping[str, np.ndarray], signature: SignatureInfo) -> None:
    """Input names, dtypes and shapes must fit `signature`; else INVALID_ARGUMENT naming the problem."""
    expected, got = set(signature.inputs), set(inputs)
    if expected != got:
        extra, missing = sorted(got - expected), sorted(expected - got)
        raise invalid(
            f"input size does not match signature {signature.name!r}: {len(got)}!={len(expected)} "
            f"len({sorted(got)}) != len({sorted(expected)}). Sent extra: {extra}. Missing but required: {missing}."
        )
    for key, array in inputs.items():
        spec = signature.inputs[key]
        if spec.is_string != (array.dtype.kind in "OSU") or (
                not spec.is_string and array.dtype != spec.np_dtype):
            raise invalid(f"input {key!r}: expects {spec.dtype_name} but {_np_name(array)} is provided")
        if spec.shape is None:
            continue
        if array.ndim != len(spec.shape) or any(
                want is not None and want != have for want, have in zip(spec.shape, array.shape)):
            raise invalid(
                f"input {key!r}: shape {list(array.shape)} is not compatible with the signature's "
                f"{spec.describe()} (rank {len(spec.shape)})"
            )


def check_batch_rows(rows: int, max_rows: int | None, where: str) -> None:
    """A request may carry at most `max_rows` rows (images, examples); INVALID_ARGUMENT (400) beyond."""
    if max_rows is not None and rows > max_rows:
        raise invalid(f"{where}: batch size {rows} exceeds the limit of {max_rows} rows per request "
                      "(--max-batch-rows); split the request")


def _np_name(array: np.ndarray) -> str:
    return "string" if array.dtype.kind in "OSU" else array.dtype.name


# ----- REST JSON: requests -------------------------------------------------------------------------------------
def decode_json(body: bytes) -> dict[str, Any]:
    """Parse a request body as a JSON object; INVALID_ARGUMENT (400) otherwise."""
    if not body:
        raise invalid("JSON Parse error: the request body is empty")
    try:
        doc = json.loads(body)
    except UnicodeDecodeError:
        raise invalid("JSON Parse error: the request body is not UTF-8") from None
    except json.JSONDecodeError as err:
        raise invalid(f"JSON Parse error: {err.msg} at offset: {err.pos}") from None
    except RecursionError:
        raise invalid("JSON Parse error: nesting too deep") from None
    if not isinstance(doc, dict):
        raise invalid(f"JSON Parse error: the request must be a JSON object, got {type(doc).__name__}")
    return doc


def signature_name_from_json(doc: Mapping[str, Any]) -> str | None:
    """The optional `signature_name` field."""
    name = doc.get("signature_name")
    if name is not None and not isinstance(name, str):
        raise invalid("'signature_name' must be a string")
    return name or None


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "b64" in value


def b64_bytes(value: Any, where: str) -> bytes:
    """Decode TF Serving's `{"b64": "…"}` (standard or URL-safe alphabet, padding optional)."""
    text = value.get("b64") if isinstance(value, dict) else None
    if not isinstance(text, str):
        raise invalid(f"{where}: 'b64' must be a string")
    raw = text.strip().encode("ascii", errors="replace")
    if not set(raw) <= _B64_CHARS:
        raise invalid(f"{where}: invalid base64 (characters outside the base64 alphabet)")
    raw = raw.rstrip(b"=").replace(b"-", b"+").replace(b"_", b"/")
    try:
        return base64.b64decode(raw + b"=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError) as err:
        raise invalid(f"{where}: invalid base64 ({err})") from None


def _utf8(text: str, where: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid(f"{where}: the string is not valid Unicode (a lone surrogate such as \\ud800); send "
                      "bytes as {\"b64\": …}") from None


def _string_leaf(value: Any, where: str) -> bytes:
    if isinstance(value, str):
        return _utf8(value, where)
    if _is_b64(value):
        return b64_bytes(value, where)
    raise invalid(f"{where}: expected a string or {{\"b64\": …}} for a string tensor, got {_json_type(value)}")


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _flatten(value: Any, leaf: Callable[[Any, str], Any], where: str, max_rank: int = MAX_RANK,
             depth: int = 0) -> tuple[list[Any], tuple[int, ...]]:
    if isinstance(value, list):
        if depth >= max_rank:
            raise invalid(f"{where}: lists nested deeper than {max_rank} levels (a tensor has at most "
                          f"{MAX_RANK} dimensions here)")
        if not value:
            return [], (0,)
        parts = [_flatten(item, leaf, where, max_rank, depth + 1) for item in value]
        shape = parts[0][1]
        if any(p[1] != shape for p in parts):
            raise invalid(f"{where}: ragged nested lists (every element must have the same shape)")
        return [x for p in parts for x in p[0]], (len(value), *shape)
    return [leaf(value, where)], ()


def _check_rank(value: Any, where: str, max_rank: int, depth: int = 0) -> None:
    if isinstance(value, list):
        if depth >= max_rank:
            raise invalid(f"{where}: lists nested deeper than {max_rank} levels (a tensor has at most "
                          f"{MAX_RANK} dimensions here)")
        for item in value:
            _check_rank(item, where, max_rank, depth + 1)


def json_to_array(value: Any, spec: TensorInfo, where: str, max_rank: int = MAX_RANK) -> np.ndarray:
    """One JSON value (scalar or nested lists, at most `max_rank` deep) → numpy array of the spec's dtype."""
    try:
        if spec.is_string:
            flat, shape = _flatten(value, _string_leaf, where, max_rank)
            array = np.empty(len(flat), dtype=object)
            array[:] = flat
            return array.reshape(shape)
        _check_rank(value, where, max_rank)
        if _contains_object(value):
            raise invalid(f"{where}: {{\"b64\": …}} and objects are only allowed for string tensors "
                          f"(this input is {spec.dtype_name})")
        try:
            raw = np.array(value)
        except ValueError:
            raise invalid(f"{where}: ragged nested lists (every element must have the same shape)") from None
    except RecursionError:
        raise invalid(f"{where}: nesting too deep") from None
    target = spec.np_dtype
    allowed = {"f": "iuf", "c": "iuf", "i": "iu", "u": "iu", "b": "b"}.get(target.kind, "")
    if raw.size and raw.dtype.kind not in allowed:
        raise invalid(f"{where}: expected {spec.dtype_name} values, got {_json_type(raw.reshape(-1)[0].item())}")
    return raw.astype(target)


def _contains_object(value: Any) -> bool:
    if isinstance(value, dict):
        return True
    return isinstance(value, list) and any(_contains_object(v) for v in value)


def predict_inputs_from_json(doc: Mapping[str, Any], signature: SignatureInfo, max_rows: int | None = None,
                             ) -> tuple[dict[str, np.ndarray], bool]:
    """Inputs of a REST :predict request; returns (inputs, row_format). At most `max_rows` instances (or rows
    of each columnar input) are accepted."""
    has_instances, has_inputs = "instances" in doc, "inputs" in doc
    if has_instances == has_inputs:
        raise invalid("Missing 'inputs' or 'instances' key" if not has_instances
                      else "Not both 'inputs' and 'instances' keys may be given")
    names = list(signature.inputs)
    if has_inputs:
        value = doc["inputs"]
        if isinstance(value, dict) and not _is_b64(value):
            unknown = sorted(set(value) - set(names))
            missing = sorted(set(names) - set(value))
            if unknown or missing:
                raise invalid(f"'inputs' keys must be the signature's inputs {sorted(names)}; "
                              f"unknown: {unknown}, missing: {missing}")
            columns = {k: json_to_array(v, signature.inputs[k], f"inputs[{k!r}]") for k, v in value.items()}
        elif len(names) != 1:
            raise invalid(f"'inputs' must be an object keyed by input name: the signature has inputs {names}")
        else:
            columns = {names[0]: json_to_array(value, signature.inputs[names[0]], "inputs")}
        for key, array in columns.items():
            if array.ndim:
                check_batch_rows(array.shape[0], max_rows, f"inputs[{key!r}]")
        return columns, False

    instances = doc["instances"]
    if not isinstance(instances, list):
        raise invalid("'instances' must be a list")
    if not instances:
        raise invalid("'instances' must have at least one element")
    check_batch_rows(len(instances), max_rows, "instances")
    named = isinstance(instances[0], dict) and not _is_b64(instances[0])
    if not named:
        if len(names) != 1:
            raise invalid(f"instances must be objects keyed by input name: the signature has inputs {names}")
        spec = signature.inputs[names[0]]
        rows = [json_to_array(row, _row_spec(spec), f"instances[{i}]", MAX_RANK - 1)
                for i, row in enumerate(instances)]
        return {names[0]: _stack(rows, "instances")}, True
    columns: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for i, row in enumerate(instances):
        if not isinstance(row, dict) or _is_b64(row):
            raise invalid(f"instances[{i}]: expected an object keyed by input name like instances[0]")
        unknown, missing = sorted(set(row) - set(names)), sorted(set(names) - set(row))
        if unknown or missing:
            raise invalid(f"instances[{i}]: keys must be the signature's inputs {sorted(names)}; "
                          f"unknown: {unknown}, missing: {missing}")
        for name in names:
            columns[name].append(json_to_array(row[name], _row_spec(signature.inputs[name]),
                                               f"instances[{i}][{name!r}]", MAX_RANK - 1))
    return {name: _stack(rows, f"instances[…][{name!r}]") for name, rows in columns.items()}, True


def _row_spec(spec: TensorInfo) -> TensorInfo:
    return TensorInfo(spec.name, spec.dtype, None if spec.shape is None else spec.shape[1:])


def _stack(rows: list[np.ndarray], where: str) -> np.ndarray:
    shape = rows[0].shape
    for i, row in enumerate(rows):
        if row.shape != shape:
            raise invalid(f"{where}: instance {i} has shape {list(row.shape)} but instance 0 has {list(shape)} "
                          "(all instances must have the same shape)")
    return np.stack(rows)


# ----- REST JSON: responses -------------------------------------------------------------------------------------
def _bytes_to_json(value: bytes, as_b64: bool) -> Any:
    if not as_b64:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return {"b64": base64.b64encode(value).decode("ascii")}


def array_to_json(array: np.ndarray, key: str) -> Any:
    """Nested lists for JSON; strings as text (or `{"b64"}` for `*_bytes` keys / non-UTF-8 bytes)."""
    if array.dtype.kind not in "OSU":
        return array.tolist()
    as_b64 = key.endswith("_bytes")

    def convert(item: Any) -> Any:
        if isinstance(item, list):
            return [convert(x) for x in item]
        if isinstance(item, bytes):
            return _bytes_to_json(item, as_b64)
        return str(item)

    return convert(array.tolist())


def predict_outputs_to_json(outputs: Mapping[str, np.ndarray], row_format: bool) -> dict[str, Any]:
    """`{"predictions": […]}` (row format) or `{"outputs": …}` (columnar), as TF Serving writes them."""
    keys = sorted(outputs)
    converted = {k: array_to_json(outputs[k], k) for k in keys}
    if not row_format:
        return {"outputs": converted[keys[0]] if len(keys) == 1 else converted}
    sizes = {k: (outputs[k].shape[0] if outputs[k].ndim else None) for k in keys}
    batch = sizes[keys[0]]
    for key in keys:
        if sizes[key] is None or sizes[key] != batch:
            raise invalid(f"output {key!r} has batch size {sizes[key]} but {keys[0]!r} has {batch}; "
                          "use the columnar format ('inputs') for this signature")
    if len(keys) == 1:
        return {"predictions": converted[keys[0]]}
    return {"predictions": [{k: converted[k][i] for k in keys} for i in range(batch or 0)]}


# ----- classify -------------------------------------------------------------------------------------------------
def _feature(value: Any, where: str) -> Any:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise invalid(f"{where}: empty list (cannot infer the feature type)")
    if all(isinstance(v, str) or _is_b64(v) for v in values):
        data = [_utf8(v, where) if isinstance(v, str) else b64_bytes(v, where) for v in values]
        return feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=data))
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
        raise invalid(f"{where}: feature values must be all strings/{{\"b64\"}} or all numbers")
    if all(isinstance(v, int) for v in values):
        try:
            return feature_pb2.Feature(int64_list=feature_pb2.Int64List(value=values))
        except ValueError as err:
            raise invalid(f"{where}: {err}") from None
    try:
        return feature_pb2.Feature(float_list=feature_pb2.FloatList(value=[float(v) for v in values]))
    except OverflowError:
        raise invalid(f"{where}: a number is too large for a float feature") from None


def _example(features: Any, where: str) -> Any:
    if not isinstance(features, dict):
        raise invalid(f"{where}: expected an object mapping feature names to values")
    example = example_pb2.Example()
    for key, value in features.items():
        _utf8(key, f"{where}: feature name {key!r}")
        example.features.feature[key].CopyFrom(_feature(value, f"{where}[{key!r}]"))
    return example


def examples_from_json(doc: Mapping[str, Any], max_rows: int | None = None) -> list[bytes]:
    """Serialized `tf.train.Example`s of a REST :classify request (`context` merged into every example); at
    most `max_rows` examples."""
    examples = doc.get("examples")
    if not isinstance(examples, list) or not examples:
        raise invalid("'examples' must be a non-empty list of objects")
    check_batch_rows(len(examples), max_rows, "examples")
    context = _example(doc["context"], "context") if "context" in doc else None
    serialized = []
    for i, features in enumerate(examples):
        example = _example(features, f"examples[{i}]")
        if context is not None:
            merged = type(example)()
            merged.CopyFrom(context)
            merged.MergeFrom(example)
            example = merged
        serialized.append(example.SerializeToString())
    return serialized


def classification_results(outputs: Mapping[str, np.ndarray], rows: int) -> list[list[tuple[str, float]]]:
    """Per example, (label, score) pairs from a classify signature's `classes` and/or `scores` outputs."""
    classes, scores = outputs.get("classes"), outputs.get("scores")
    if classes is None and scores is None:
        raise invalid("classification signature has neither 'classes' nor 'scores' output")
    reference = scores if scores is not None else classes
    if reference.ndim != 2 or reference.shape[0] != rows:
        raise invalid(f"classification outputs must be [batch, classes]; got shape {list(reference.shape)}")
    results = []
    for i in range(rows):
        row = []
        for j in range(reference.shape[1]):
            label = classes[i, j] if classes is not None else b""
            label = label.decode("utf-8", errors="replace") if isinstance(label, bytes) else str(label)
            row.append((label, float(scores[i, j]) if scores is not None else 0.0))
        results.append(row)
    return results


# ----- gRPC TensorProto -----------------------------------------------------------------------------------------
def tensor_proto_to_array(proto: Any, where: str, max_rows: int | None = None,
                          max_elements: int | None = None) -> np.ndarray:
    """A request `TensorProto` → numpy; malformed protos are INVALID_ARGUMENT.

    Checked *before* anything is allocated (a few bytes of proto may declare any shape, and `make_ndarray`
    fills a short value list up to the declared size): a dtype numpy can hold, a known rank of at most
    `MAX_RANK` with non-negative dimensions, at most `max_rows` rows (dimension 0) and `max_elements` elements.
    """
    if proto.dtype == DT_INVALID:
        raise invalid(f"{where}: tensor has no dtype")
    try:
        tf.dtypes.as_dtype(proto.dtype).as_numpy_dtype  # noqa: B018 - raises for unknown, resource, variant
    except (TypeError, KeyError):
        raise invalid(f"{where}: unsupported tensor dtype {proto.dtype}") from None
    shape = proto.tensor_shape
    if shape.unknown_rank:
        raise invalid(f"{where}: tensor shape has unknown rank")
    dims = [d.size for d in shape.dim]
    if len(dims) > MAX_RANK or any(d < 0 for d in dims):
        raise invalid(f"{where}: invalid tensor shape {dims[:MAX_RANK + 1]} (at most {MAX_RANK} non-negative "
                      "dimensions)")
    if dims:
        check_batch_rows(dims[0], max_rows, where)
    elements = 1
    for d in dims:
        elements *= d
    if max_elements is not None and elements > max_elements:
        raise invalid(f"{where}: tensor shape {dims} has {elements} elements, more than the limit of "
                      f"{max_elements}")
    try:
        return tf.make_ndarray(proto)
    except (TypeError, ValueError, KeyError) as err:
        raise invalid(f"{where}: malformed TensorProto ({err})") from None


def array_to_tensor_proto(array: np.ndarray) -> Any:
    """numpy → `TensorProto` (fast paths for strings and plain numeric arrays)."""
    array = np.asarray(array)
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d)
                                                   for d in array.shape])
    if array.dtype.kind in "OSU":
        flat = [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in array.reshape(-1).tolist()]
        return tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_shape=shape, string_val=flat)
    numeric = {np.dtype(np.float32): types_pb2.DT_FLOAT, np.dtype(np.float64): types_pb2.DT_DOUBLE,
               np.dtype(np.int32): types_pb2.DT_INT32, np.dtype(np.int64): types_pb2.DT_INT64,
               np.dtype(np.uint8): types_pb2.DT_UINT8}
    dtype = numeric.get(array.dtype)
    if dtype is not None:
        content = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
        return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape, tensor_content=content)
    return tf.make_tensor_proto(array)
