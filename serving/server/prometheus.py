"""Prometheus metrics of the local server, named and labelled as TensorFlow Serving exports them.

TF Serving exposes its monitoring counters at `/monitoring/prometheus/metrics` when started with
`--monitoring_config_file` (a text `MonitoringConfig`: `prometheus_config { enable: true, path: "…" }`); the
local server reads the same file (`parse_monitoring_config`) and serves the same page from its REST port. Names are
TF Serving's with '/' turned into ':', as its exporter does:

* `:tensorflow:serving:request_count{model_name,status}` – Predict/Classify/Regress requests by final status
  (`OK`, `INVALID_ARGUMENT`, …), counted on both APIs;
* `:tensorflow:serving:request_latency{model_name,API,entrypoint}` – µs per successful request
  (`API` = Predict | Classify, `entrypoint` = REST | GRPC);
* `:tensorflow:serving:runtime_latency{model_name,API,runtime}` – µs per model call (`runtime` = TF2);
* `:tensorflow:serving:batching_session:wrapped_run_count` – model calls made by the batcher;
* `:tensorflow:serving:batching_session:queuing_latency{thread_pool_name}` – µs a request waited in the batch
  queue;
* `:tensorflow:serving:batching_session:processed_batch_size{thread_pool_name}` – rows per merged model call
  (TF Serving keeps this one as a percentile sampler that its Prometheus page does not show; here it is a
  histogram, so `_sum / _count` is the mean batch size).

Histogram buckets are TF Serving's (latency: 10 µs × 1.8^i, 33 buckets; queuing: 100 µs × 1.2^i, 52 buckets).
Model names that are not configured are counted as `model_name=""`, so clients cannot grow the label set.
`read_page` / `sample_value` read such a page back (benchmarks and tests).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable

import prometheus_client
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families

DEFAULT_PATH = "/monitoring/prometheus/metrics"  # TF Serving's PrometheusExporter::kPrometheusPath
CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST
LATENCY_BUCKETS = tuple(10 * 1.8**i for i in range(32))  # + the +Inf bucket: TF Serving's 33 buckets (µs)
QUEUING_BUCKETS = tuple(100 * 1.2**i for i in range(51))
BATCH_SIZE_BUCKETS = tuple(float(2**i) for i in range(15))  # 1, 2, 4, … 16384 rows

prometheus_client.disable_created_metrics()  # TF Serving's page has no `_created` series


class _PlainCounter:
    """A labelled counter written under its exact name, as TF Serving's page has it: prometheus_client's
    exposition always renames a counter family to `<name>_total`, so these few lines are written here."""

    def __init__(self, name: str, documentation: str, labelnames: Iterable[str] = ()) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._values: dict[tuple[str, ...], int] = {}
        self._lock = threading.Lock()

    def inc(self, *labelvalues: str) -> None:
        """Add one to the series with these label values."""
        if len(labelvalues) != len(self._labelnames):
            raise ValueError(f"{self._name} takes labels {self._labelnames}, got {labelvalues}")
        with self._lock:
            self._values[labelvalues] = self._values.get(labelvalues, 0) + 1

    def text(self) -> str:
        """HELP, TYPE and one line per series in the Prometheus text format."""
        with self._lock:
            series = sorted(self._values.items())
        lines = [f"# HELP {self._name} {self._documentation}", f"# TYPE {self._name} counter"]
        for labelvalues, value in series:
            labels = ",".join(f'{name}="{_escape(value_)}"' for name, value_ in zip(self._labelnames, labelvalues))
            lines.append(f"{self._name}{{{labels}}} {value}" if labels else f"{self._name} {value}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class ServingMetrics:
    """The server's metrics in their own registry (one per server, so servers in one process stay apart)."""

    def __init__(self, model_names: Iterable[str] = ()) -> None:
        self._model_names = frozenset(model_names)  # replaced whole (add_model_names), never mutated
        self.registry = CollectorRegistry(auto_describe=True)
        self.request_count = _PlainCounter(":tensorflow:serving:request_count", "The total number of requests.",
                                           ("model_name", "status"))
        self.wrapped_run_count = _PlainCounter(":tensorflow:serving:batching_session:wrapped_run_count",
                                               "Total count of run calls on the wrapped session")
        self.request_latency = Histogram(
            ":tensorflow:serving:request_latency",
            "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
            ("model_name", "API", "entrypoint"), buckets=LATENCY_BUCKETS, registry=self.registry)
        self.runtime_latency = Histogram(
            ":tensorflow:serving:runtime_latency",
            "Distribution of wall time (in microseconds) for Tensorflow runtime.",
            ("model_name", "API", "runtime"), buckets=LATENCY_BUCKETS, registry=self.registry)
        self.queuing_latency = Histogram(
            ":tensorflow:serving:batching_session:queuing_latency",
            "Distribution of wall time spent (in microseconds) in queuing", ("thread_pool_name",),
            buckets=QUEUING_BUCKETS, registry=self.registry)
        self.processed_batch_size = Histogram(
            ":tensorflow:serving:batching_session:processed_batch_size",
            "Rows per batched model call", ("thread_pool_name",), buckets=BATCH_SIZE_BUCKETS,
            registry=self.registry)

    def add_model_names(self, names: Iterable[str]) -> None:
        """Label series with `names` too (models added by a live config reload)."""
        self._model_names = self._model_names | frozenset(names)

    def model_label(self, name: str) -> str:
        """`name` if it is a configured model, else "" (unknown names never become new series)."""
        return name if name in self._model_names else ""

    def record_request(self, model_name: str, api: str, entrypoint: str, status: str, seconds: float) -> None:
        """One Predict/Classify/Regress request: counted by status; its latency only when it succeeded (as TF
        Serving does)."""
        label = self.model_label(model_name)
        self.request_count.inc(label, status)
        if status == "OK":
            self.request_latency.labels(label, api, entrypoint).observe(seconds * 1e6)

    def record_runtime(self, model_name: str, api: str, seconds: float) -> None:
        """One model call (a single request, or a merged batch)."""
        self.runtime_latency.labels(self.model_label(model_name), api, "TF2").observe(seconds * 1e6)

    def record_batch(self, thread_pool_name: str, rows: int, queued_seconds: Iterable[float]) -> None:
        """One batch taken by a batch thread: its rows and how long each of its requests waited."""
        self.wrapped_run_count.inc()
        self.processed_batch_size.labels(thread_pool_name).observe(rows)
        histogram = self.queuing_latency.labels(thread_pool_name)
        for seconds in queued_seconds:
            histogram.observe(seconds * 1e6)

    def page(self) -> bytes:
        """The Prometheus text page."""
        counters = self.request_count.text() + self.wrapped_run_count.text()
        return counters.encode("utf-8") + prometheus_client.generate_latest(self.registry)


def parse_monitoring_config(text: str) -> str | None:
    """The metrics path of a TF Serving `--monitoring_config_file` (text `MonitoringConfig`), or None when
    `prometheus_config.enable` is false. The message is built from its two-field .proto definition because
    tensorflow-serving-api does not ship `monitoring_config_pb2`; text-format errors name the line."""
    config = _monitoring_config_class()()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as err:
        raise ValueError(f"monitoring config: {err}") from None
    if not config.prometheus_config.enable:
        return None
    return config.prometheus_config.path or DEFAULT_PATH


@functools.cache
def _monitoring_config_class() -> type:
    """`tensorflow.serving.MonitoringConfig` (tensorflow_serving/config/monitoring_config.proto) as a message
    class, built once in a private descriptor pool."""
    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="visionline/monitoring_config.proto",
                                               package="tensorflow.serving", syntax="proto3")
    prometheus = proto.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, type=field.TYPE_BOOL, label=field.LABEL_OPTIONAL)
    prometheus.field.add(name="path", number=2, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    monitoring = proto.message_type.add(name="MonitoringConfig")
    monitoring.field.add(name="prometheus_config", number=1, type=field.TYPE_MESSAGE, label=field.LABEL_OPTIONAL,
                         type_name=".tensorflow.serving.PrometheusConfig")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.MonitoringConfig"))


Page = dict[tuple[str, frozenset], float]


def read_page(text: str) -> Page:
    """Every sample of a Prometheus text page: (sample name, frozenset of labels) → value; ValueError on a
    malformed page. prometheus_client's parser names counter samples `<name>_total`; TF Serving's page (and this
    server's) has no suffix, so it is dropped again here."""
    return {(s.name.removesuffix("_total") if family.type == "counter" else s.name, frozenset(s.labels.items())):
            s.value for family in text_string_to_metric_families(text) for s in family.samples}


def sample_value(page: Page, name: str, **labels: str) -> float:
    """One sample of a `read_page` result (0 when the series does not exist yet)."""
    return page.get((name, frozenset(labels.items())), 0.0)
