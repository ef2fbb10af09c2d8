"""`visionline demo-data` (the embedded digits as PNG class folders, or as a multilabel CSV manifest) and
`visionline weights` (EfficientNet-Lite0/1/2's ImageNet weights, converted and cached offline).

    visionline demo-data [DEST] [--per-class N] [--multilabel]
    visionline weights
"""

from __future__ import annotations

import argparse

from pipeline import demo_data
from pipeline.cli import errors


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `demo-data` and `weights`."""
    demo = subparsers.add_parser("demo-data", help="write the embedded demo images as PNG class folders")
    demo.add_argument("dest", nargs="?", help=f"default {demo_data.DEFAULT_DEMO_DIR} "
                      f"(--multilabel: {demo_data.DEFAULT_MULTILABEL_DIR})")
    demo.add_argument("--per-class", type=int, help="keep only N images per digit")
    demo.add_argument("--multilabel", action="store_true",
                      help="digit attributes (even|prime|loop) in a CSV manifest; prints the manifest to use as "
                           "data.root with train.task=multilabel")
    demo.set_defaults(handler=write_demo_data)

    weights = subparsers.add_parser(
        "weights", help="convert and cache EfficientNet-Lite0/1/2's ImageNet weights (offline); print their paths")
    weights.set_defaults(handler=cache_weights)


def write_demo_data(args: argparse.Namespace) -> int:
    """Write the demo images (or the multilabel manifest) and print where."""
    if args.multilabel:
        print(demo_data.materialize_digit_attributes(args.dest or demo_data.DEFAULT_MULTILABEL_DIR,
                                                     per_class=args.per_class))
    else:
        print(demo_data.materialize_digits(args.dest or demo_data.DEFAULT_DEMO_DIR, per_class=args.per_class))
    return errors.OK


def cache_weights(args: argparse.Namespace) -> int:
    """Convert and cache the EfficientNet-Lite weights; print the cached files."""
    # TensorFlow loads here, not at import: `visionline --help` stays fast.
    from components.trainer.backbones.efficientnet_lite import VARIANTS
    from components.trainer.backbones.efficientnet_lite_weights import cached_imagenet_weights

    for variant in VARIANTS.values():
        print(cached_imagenet_weights(variant))
    return errors.OK
