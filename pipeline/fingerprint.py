"""Source fingerprints of the code each TFX component runs, for correct caching.

Module paths (`run_fn='components.modules…'`) are cached by name only, so each component that runs project
code gets a hash of that code in its `custom_config` (the Evaluator: in the config of each custom TFMA metric):
edit the code and the component (and everything downstream) runs again; leave it and the cache hits.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import components

_ROOT = Path(components.__file__).resolve().parent

INGEST_SOURCES = ("features.py", "example_gen")
# The module files and everything they import from `components` (tests/pipeline/test_pipeline.py checks this).
TRANSFORM_SOURCES = ("environment.py", "features.py", "settings.py", "transform", "modules/transform_module.py")
TRAINER_SOURCES = ("environment.py", "features.py", "settings.py", "warmup.py", "tflite_variants.py", "transform",
                   "trainer", "modules")
METRICS_SOURCES = ("evaluator/metric_keys.py", "evaluator/custom_metrics.py")  # the Evaluator's custom TFMA metrics
VALIDATION_SOURCES = ("validation_gate", "accepted_statistics/store.py")


def source_fingerprint(relative_paths: tuple[str, ...]) -> str:
    """SHA-256 (first 16 hex digits) over the named files / folders' `.py` files under `components/`."""
    digest = hashlib.sha256()
    for relative in relative_paths:
        target = _ROOT / relative
        files = sorted(target.rglob("*.py")) if target.is_dir() else [target]
        for path in files:
            digest.update(str(path.relative_to(_ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
