"""Server-side batching: concurrent requests to one signature are merged into one model call.

A `Batcher` owns a queue and `num_batch_threads` worker threads. As in TF Serving's batch scheduler there is
one open batch at a time: the worker holding the collection lock takes the oldest request, then collects more
(same input names, dtypes and per-row shapes) until `max_batch_size` rows are gathered or `batch_timeout_micros`
has passed since that first request arrived; it then hands the lock to the next idle worker, concatenates the
inputs along the batch dimension, runs the model once and hands every request its own slice of the outputs.
(Workers that each collected their own batch at the same time would split the arrivals between them and halve
the batches.) As in TF Serving, a
request larger than `max_batch_size` runs on its own, and a full queue fails fast with UNAVAILABLE.

Requests whose deadline passed or whose client went away (`serving.server.deadlines`, attached at `submit()`)
are dropped with DEADLINE_EXCEEDED / CANCELLED when they are taken from the queue and again just before their
batch runs, so nobody computes for a caller that stopped waiting; a request whose future was cancelled (the REST
timeout) is dropped too.

One bad request must not fail its neighbours: if a merged batch fails with INVALID_ARGUMENT (e.g. one
image that cannot be decoded), its requests are re-run one by one so only the culprit gets the error.

`stats` counts batches, requests and rows; with `ServingMetrics` given, every batch is also recorded there
(rows per model call, each request's time in the queue, model calls made); `stats.dropped` counts the requests
dropped unrun.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field

import grpc
import numpy as np

from serving.errors import ServingError
from serving.server import deadlines
from serving.server.config import BatchingConfig
from serving.server.deadlines import Deadline
from serving.server.prometheus import ServingMetrics

log = logging.getLogger(__name__)

RunFn = Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass
class _Task:
    inputs: Mapping[str, np.ndarray]
    rows: int
    key: tuple
    deadline: Deadline | None = None
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)

    def dropped(self) -> bool:
        """True (and the future failed) if the request is no longer wanted; see the module docstring."""
        if self.future.cancelled():
            return True
        error = self.deadline.error() if self.deadline is not None else None
        if error is None:
            return False
        self.future.set_exception(error)
        return True


@dataclass
class BatchStats:
    """Counters for tests and benchmarks."""

    batches: int = 0
    requests: int = 0
    rows: int = 0
    max_rows: int = 0
    dropped: int = 0  # requests not run: deadline passed, client gone or future cancelled


_STOP = object()


class Batcher:
    """Merges concurrent `submit()`s to one `run` function; see the module docstring."""

    def __init__(self, run: RunFn, config: BatchingConfig, name: str = "batcher",
                 metrics: ServingMetrics | None = None) -> None:
        self._run_fn = run
        self._name = name
        self._metrics = metrics
        self._config = config
        self._timeout = config.batch_timeout_micros / 1e6
        self._queue: queue.Queue = queue.Queue(maxsize=config.max_enqueued_batches * config.max_batch_size)
        self._closed = False
        self._lock = threading.Lock()
        self._collect_lock = threading.Lock()  # one open batch at a time
        self._carry: _Task | object | None = None  # taken from the queue but not fitting the last batch
        self.stats = BatchStats()
        self._threads = [threading.Thread(target=self._worker, name=f"{name}-{i}", daemon=True)
                         for i in range(config.num_batch_threads)]
        for thread in self._threads:
            thread.start()

    def submit(self, inputs: Mapping[str, np.ndarray], deadline: Deadline | None = None) -> Future:
        """Queue one request (a dict of batch-major arrays); the future resolves to its outputs. `deadline`
        (default: the current request's, `deadlines.current()`) lets the request be dropped unrun."""
        if self._closed:
            raise ServingError(grpc.StatusCode.UNAVAILABLE, "the model version is being unloaded; retry")
        first = next(iter(inputs.values()))
        key = tuple(sorted((k, v.dtype.str, v.shape[1:]) for k, v in inputs.items()))
        task = _Task(inputs=inputs, rows=int(first.shape[0]) if first.ndim else 1, key=key,
                     deadline=deadline if deadline is not None else deadlines.current())
        try:
            self._queue.put_nowait(task)
        except queue.Full:
            raise ServingError(grpc.StatusCode.UNAVAILABLE, "batch queue is full; retry later") from None
        return task.future

    def close(self) -> None:
        """Finish everything queued, then stop the workers."""
        self._closed = True
        for _ in self._threads:
            self._queue.put(_STOP)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=30)
        while True:  # anything that raced past the closed flag is failed, never left hanging
            try:
                task = self._queue.get_nowait()
            except queue.Empty:
                return
            if task is not _STOP and not task.future.cancelled():
                task.future.set_exception(ServingError(grpc.StatusCode.UNAVAILABLE, "model version unloaded; retry"))

    # ----- worker ------------------------------------------------------------------------------------------
    def _worker(self) -> None:
        while True:
            batch = self._collect()
            if batch is None:
                return
            self._process(batch)

    def _collect(self) -> list[_Task] | None:
        """The next batch (None: stop). Only one worker collects at a time; a request that does not fit is
        left in `_carry` to open the next batch."""
        with self._collect_lock:
            while True:
                task = self._carry if self._carry is not None else self._queue.get()
                self._carry = None
                if task is _STOP:
                    return None
                if not self._drop(task):
                    break
            batch, rows = [task], task.rows
            deadline = task.enqueued + self._timeout
            while rows < self._config.max_batch_size:
                remaining = deadline - time.monotonic()
                try:
                    nxt = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is not _STOP and self._drop(nxt):
                    continue
                if nxt is _STOP or nxt.key != task.key or rows + nxt.rows > self._config.max_batch_size:
                    self._carry = nxt
                    break
                batch.append(nxt)
                rows += nxt.rows
            return batch

    def _drop(self, task: _Task) -> bool:
        if not task.dropped():
            return False
        with self._lock:
            self.stats.dropped += 1
        return True

    def _process(self, batch: list[_Task]) -> None:
        # last check before running: drop what expired while the batch was collected; a future that is set
        # running can no longer be cancelled, so set_result/set_exception below cannot fail
        batch = [t for t in batch if not self._drop(t) and t.future.set_running_or_notify_cancel()]
        if not batch:
            return
        rows = sum(t.rows for t in batch)
        with self._lock:
            self.stats.batches += 1
            self.stats.requests += len(batch)
            self.stats.rows += rows
            self.stats.max_rows = max(self.stats.max_rows, rows)
        if self._metrics is not None:
            now = time.monotonic()
            self._metrics.record_batch(self._name, rows, [now - t.enqueued for t in batch])
        if len(batch) == 1:
            self._run_single(batch[0])
            return
        merged = {key: np.concatenate([t.inputs[key] for t in batch]) for key in batch[0].inputs}
        try:
            outputs = self._run_fn(merged)
        except ServingError as err:
            if err.code == grpc.StatusCode.INVALID_ARGUMENT:
                for task in batch:  # isolate the request(s) that caused it
                    self._run_single(task)
            else:
                for task in batch:
                    task.future.set_exception(err)
            return
        except Exception as err:  # every waiting request must be told
            log.exception("batched model call failed")
            for task in batch:
                task.future.set_exception(ServingError(grpc.StatusCode.INTERNAL, f"model call failed: {err}"))
            return
        if any(v.ndim == 0 or v.shape[0] != rows for v in outputs.values()):
            for task in batch:  # outputs that are not batch-major cannot be split: run one by one
                self._run_single(task)
            return
        start = 0
        for task in batch:
            stop = start + task.rows
            task.future.set_result({k: v[start:stop] for k, v in outputs.items()})
            start = stop

    def _run_single(self, task: _Task) -> None:
        try:
            task.future.set_result(self._run_fn(task.inputs))
        except ServingError as err:
            task.future.set_exception(err)
        except Exception as err:
            log.exception("model call failed")
            task.future.set_exception(ServingError(grpc.StatusCode.INTERNAL, f"model call failed: {err}"))
