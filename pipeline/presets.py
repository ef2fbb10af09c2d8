"""Presets: named sets of config values, layered between the built-in defaults and what the user sets.

A run's configuration is resolved in this order, later wins: the `PipelineConfig` defaults (which *are* the
`default` preset) → the values of the chosen preset → the config file → named flags → `--set`. So a preset is
nothing but config values: `visionline config --set preset=fast` prints what it resolved to, and any value the user
sets explicitly still wins over it.

* `default` — for a user's own colour photos: the best offline ImageNet backbone at its native resolution with a
  photo recipe (head on cached features, then fine-tuning with photo augmentation, label smoothing, warm-up +
  cosine). What `visionline run --data DIR` uses.
* `fast` — the same recipe on a smaller, quicker budget (a first look at new data, CI on real photos).
* `accurate` — the largest offline backbone, more fine-tuning: slower, for the final model.
* `demo` — the embedded 8×8 digits demo (`--demo` selects it): a small CNN trained from scratch at 32 px, as before
  presets existed, so `make run` stays a few minutes.

docs/benchmarks.md (bench-photos) has each preset's measured accuracy and time on real photos.
"""

from __future__ import annotations

from typing import Any

DEFAULT = "default"
DEMO = "demo"

# Dotted config keys → values, applied on top of the `PipelineConfig` defaults (the `default` preset).
PRESETS: dict[str, dict[str, Any]] = {
    DEFAULT: {},
    "fast": {
        "transform.image_size": 160,
        "train.fine_tune_epochs": 2,
    },
    "accurate": {
        "train.model": "efficientnet_lite2",
    },
    DEMO: {
        "transform.image_size": 32,
        "train.model": "simple_cnn",
        "train.epochs": 20,
        "train.fine_tune_epochs": 0,
        "train.fine_tune": "none",
        "train.learning_rate": 1e-3,
        "train.optimizer": "adam",
        "train.fine_tune_learning_rate": 1e-5,
        "train.dropout": 0.3,
        "train.augment_flip": False,
        "train.augment_crop": 0.0,
        "train.augment_color": 0.0,
        "train.label_smoothing": 0.0,
        "train.lr_schedule": "constant",
        "train.warmup_epochs": 0.0,
        "train.early_stopping_patience": 3,
        "train.early_stopping_monitor": "val_loss",
        "eval.min_kappa": 0.4,
    },
}


def names() -> tuple[str, ...]:
    """The preset names, `default` first."""
    return tuple(PRESETS)


def nested(name: str) -> dict[str, Any]:
    """The preset's values as a nested dict (`{"train": {"epochs": 20}}`), as `PipelineConfig.from_dict` takes."""
    out: dict[str, Any] = {}
    for dotted, value in PRESETS[name].items():
        node = out
        *sections, key = dotted.split(".")
        for section in sections:
            node = node.setdefault(section, {})
        node[key] = value
    return out


def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`top` over `base`, section by section (nested dicts merge; any other value in `top` replaces)."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out
