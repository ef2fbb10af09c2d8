"""Tests for the `visionline` CLI package (pipeline.cli): every command has its handler (serving's keep their own
dispatch), the one error-to-exit-code mapping, and a light `--help` (no TensorFlow, TFX, Beam or ML Metadata).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import cli
from pipeline.cli import errors, kubeflow
from pipeline.configs import ConfigError
from serving import cli as serving_cli

COMMANDS = ["run", "config", "schema", "demo-data", "weights", "last-run", "report", "runs", "prune", "evaluate",
            "serve", "predict", "predict-batch", "compile", "schedule", "submit", "kfp-local"]


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def test_every_command_in_order_with_a_handler_except_the_serving_ones():
    choices = _subparsers(cli.build_parser()).choices
    assert list(choices) == COMMANDS
    for name, parser in choices.items():
        handler = parser.get_default("handler")
        assert (handler is None) == (name in serving_cli.COMMANDS), name


def test_error_mapping_prints_one_line_and_returns_the_exit_code(capsys):
    def failing(error):
        def handler(args):
            raise error
        return handler

    args = argparse.Namespace()
    for error in (ConfigError("bad key"), FileNotFoundError("no file"), LookupError("no run"), ValueError("bad")):
        assert errors.run_handler(failing(error), args) == errors.USAGE_ERROR
        assert capsys.readouterr().err == f"visionline: error: {error}\n"
    assert errors.run_handler(failing(errors.RemoteApiError("Kubeflow Pipelines API: 503")), args) == 1
    assert capsys.readouterr().err == "visionline: error: Kubeflow Pipelines API: 503\n"
    with pytest.raises(RuntimeError):  # anything else is a bug: its traceback stays
        errors.run_handler(failing(RuntimeError("bug")), args)
    assert errors.run_handler(lambda a: 0, args) == errors.OK


def test_remote_api_turns_only_the_client_librarys_errors_into_api_errors():
    api_error = type("ApiException", (Exception,), {"__module__": "kfp_server_api.exceptions"})
    with pytest.raises(errors.RemoteApiError, match="^Kubeflow Pipelines API: 409 conflict$"):
        with errors.remote_api(kubeflow.KFP_API, kubeflow.KFP_MODULES):
            raise api_error("409 conflict")
    api_value_error = type("ApiValueError", (ValueError,), {"__module__": "kfp_server_api.exceptions"})
    with pytest.raises(api_value_error):  # a usage error stays one (exit 2), whoever raised it
        with errors.remote_api(kubeflow.KFP_API, kubeflow.KFP_MODULES):
            raise api_value_error("bad")
    with pytest.raises(KeyError):
        with errors.remote_api(kubeflow.KFP_API, kubeflow.KFP_MODULES):
            raise KeyError("ours")


def test_submit_without_a_host_is_a_usage_error(capsys, monkeypatch):
    monkeypatch.delenv("KF_PIPELINES_ENDPOINT", raising=False)
    assert cli.main(["submit"]) == errors.USAGE_ERROR
    assert "--host is needed" in capsys.readouterr().err


def test_help_and_config_stay_light(tmp_path):
    probe = ("import sys; from pipeline import cli; cli.main(['config', '--work-dir', sys.argv[1]]); "
             "print(sorted(m for m in ('tensorflow', 'tfx', 'apache_beam', 'ml_metadata', 'tensorflow_model_analysis',"
             " 'matplotlib', 'jinja2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], check=True, capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert json.loads(out.stdout.strip().splitlines()[-1].replace("'", '"')) == []
