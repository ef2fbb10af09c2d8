"""The process environment visionline needs before TensorFlow is first imported: Keras 2 and quiet logs.

tf.Transform (TFX 1.16) works only with Keras 2, which TensorFlow 2.16 selects when `TF_USE_LEGACY_KERAS=1` is set
before it is imported. Every entry point imports this module first — the `visionline` CLI, `python -m pipeline`,
`python -m serving`, the TFX module files in `components/modules/`, the test suite — and the pipeline image sets
the same variables in its Dockerfile, so Kubeflow's executor entrypoints get them too. Beam worker processes
inherit them from the process that starts them. Importing it is cheap: it loads no TensorFlow.
"""

from __future__ import annotations

import os
import warnings

SETTINGS = {
    "TF_USE_LEGACY_KERAS": "1",  # tf.keras is Keras 2 (tf_keras), as tf.Transform requires
    "TF_CPP_MIN_LOG_LEVEL": "2",  # TensorFlow's C++ logs: warnings and errors only
}


def configure() -> None:
    """Set the variables (a value the user already set wins) and silence Google client libraries' FutureWarnings."""
    for name, value in SETTINGS.items():
        os.environ.setdefault(name, value)
    # Google client libraries pulled in by TFX warn about future Python/grpcio support on every import.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")


configure()
