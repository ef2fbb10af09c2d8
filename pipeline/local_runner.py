"""Run the pipeline locally: pre-flight checks of the output locations, then TFX `LocalDagRunner`, Apache Beam
DirectRunner, SQLite ML Metadata."""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

from absl import logging as absl_logging
from tfx import v1 as tfx

from components.validation_gate.checks import DataValidationError
from pipeline import preflight, run_lock
from pipeline.configs import PipelineConfig
from pipeline.pipeline import create_pipeline
from pipeline.runs.summary import RunSummary, latest_run


class _ComponentProgress(logging.Filter):
    """Lets LocalDagRunner's 'Component X is running/finished' lines through when TFX logging is quiet."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return record.levelno >= logging.ERROR or (
            message.startswith("Component ") and message.endswith(("is running.", "is finished."))
        )


class _CurrentStderrHandler(logging.StreamHandler):
    """A stream handler writing to whatever `sys.stderr` is when a record is emitted (not when it was made)."""

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure_logging(verbose: bool) -> None:
    """INFO everywhere with `verbose`; otherwise warnings plus one line per component start/finish."""
    absl_logging.set_verbosity(absl_logging.INFO)
    absl_logger = logging.getLogger("absl")
    root = logging.getLogger()
    if verbose:
        root.setLevel(logging.INFO)
        return
    root.setLevel(logging.WARNING)
    for handler in root.handlers:
        handler.setLevel(logging.WARNING)
    # absl's root handler keeps the stderr of the moment it was made (e.g. an earlier command's captured stream):
    # point it at today's, as the progress handler below always is.
    absl_logging.get_absl_handler().python_handler.stream = sys.stderr
    progress = _CurrentStderrHandler()
    progress.setFormatter(logging.Formatter("visionline: %(message)s"))
    progress.addFilter(_ComponentProgress())
    absl_logger.handlers = [progress]
    absl_logger.propagate = False
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def run_local(config: PipelineConfig) -> RunSummary:
    """Run the whole DAG for `config` and return the run's summary from ML Metadata.

    The output locations are checked first (`preflight`: writable, enough free disk; `PreflightError`); another
    process running or pruning the same pipeline refuses it (`run_lock.RunInProgressError`). When the
    validation gate stops the run, its `DataValidationError` is raised with the run's summary attached.
    """
    preflight.check_outputs(config)
    pipeline = create_pipeline(config)
    os.makedirs(os.path.dirname(config.metadata_path), exist_ok=True)
    try:
        with run_lock.exclusive(config.metadata_path, "run"):
            tfx.orchestration.LocalDagRunner().run(pipeline)
    except run_lock.RunInProgressError:
        raise
    except Exception as err:  # the gate fails its execution with the verdict kept in ML Metadata
        try:
            summary = latest_run(config.metadata_path)
        except (FileNotFoundError, LookupError):
            raise err from None  # failed before any run was recorded: the original error says why
        if not summary.data_validation.get("stopped"):
            raise
        stopped = DataValidationError.from_verdict(summary.data_validation)
        stopped.summary = summary
        raise stopped from err
    return latest_run(config.metadata_path)
