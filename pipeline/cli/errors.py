"""The `visionline` exit codes, and the one mapping of a command's errors to them.

    0  success
    1  a remote API (Kubeflow Pipelines) failed the request
    2  usage or configuration error: bad config, missing file or store, unknown run, invalid value
    3  the run succeeded but its report could not be written
    4  the data validation gate stopped the run
    5  the run finished but its model was not blessed: it failed an Evaluator gate, nothing was pushed
    6  a task of the compiled pipeline failed (`kfp-local`)

The serving commands (`serve`, `predict`, `predict-batch`) keep their own codes (serving.cli).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pipeline.configs import ConfigError

OK = 0
API_ERROR = 1
USAGE_ERROR = 2
REPORT_FAILED = 3
DATA_STOPPED = 4
NOT_BLESSED = 5
TASK_FAILED = 6

# What a user can fix: printed as one line, no traceback.
USAGE_ERRORS = (ConfigError, FileNotFoundError, LookupError, ValueError)

Handler = Callable[[argparse.Namespace], int]


class RemoteApiError(Exception):
    """A remote service's client library failed a request (see `remote_api`)."""


@contextmanager
def remote_api(service: str, modules: tuple[str, ...]) -> Iterator[None]:
    """Re-raise errors from the client library `modules` (top-level package names) as RemoteApiError
    ("<service>: <error>"); usage errors and any other error pass through unchanged."""
    try:
        yield
    except USAGE_ERRORS:
        raise
    except Exception as err:
        if type(err).__module__.split(".")[0] not in modules:
            raise
        raise RemoteApiError(f"{service}: {err}") from err


def run_handler(handler: Handler, args: argparse.Namespace) -> int:
    """Run a command's handler; its usage errors and remote API errors become a one-line message and exit code."""
    try:
        return handler(args)
    except USAGE_ERRORS as err:
        print(f"visionline: error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except RemoteApiError as err:
        print(f"visionline: error: {err}", file=sys.stderr)
        return API_ERROR
