"""`visionline schema`: regenerate a curated TFDV schema from the data (pipeline.schema_tool; see schema/README.md).

    visionline schema --data PATH --out schema/NAME/schema.pbtxt [run's config flags]
"""

from __future__ import annotations

import argparse

from pipeline.cli import errors
from pipeline.cli.options import add_config_args, resolve_config


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `schema`."""
    schema = subparsers.add_parser("schema",
                                   help="regenerate a curated TFDV schema from the data (see schema/README.md)")
    add_config_args(schema)
    schema.add_argument("--out", required=True, help="schema.pbtxt to write, e.g. schema/NAME/schema.pbtxt")
    schema.set_defaults(handler=regenerate_schema)


def regenerate_schema(args: argparse.Namespace) -> int:
    """Ingest the data up to StatisticsGen, write the curated schema, say what it holds."""
    config = resolve_config(args)
    # TFX and TFDV load here, not at import: `visionline --help` stays fast.
    from pipeline import schema_tool
    from pipeline.local_runner import configure_logging

    config.validate()
    configure_logging(verbose=False)
    result = schema_tool.regenerate(config, args.out)
    examples = ", ".join(f"{split} {count}" for split, count in sorted(result.examples.items()))
    print(f"wrote {result.path}: {len(result.features)} features, label domain of {len(result.labels)} classes "
          f"({', '.join(result.labels[:12])}{', …' if len(result.labels) > 12 else ''}) from {examples} examples")
    return errors.OK
