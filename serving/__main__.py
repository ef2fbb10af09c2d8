"""`python -m serving serve|predict|predict-batch …`: the serving sub-commands without the pipeline CLI."""

from __future__ import annotations

import argparse
import sys

import components.environment  # noqa: F401  (Keras 2 before TensorFlow loads)
from serving import cli


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` with the serving sub-commands only and run the chosen one."""
    parser = argparse.ArgumentParser(prog="python -m serving", description="visionline serving commands")
    cli.register(parser.add_subparsers(dest="command", required=True))
    code = cli.dispatch(parser.parse_args(argv))
    return 0 if code is None else code


if __name__ == "__main__":
    sys.exit(main())
