"""visionline pipeline package: configuration, the TFX DAG, its runners, the CLI and run summaries.

Importing it pins Keras 2 (`TF_USE_LEGACY_KERAS=1`) before TensorFlow loads, as tf.Transform requires.
"""

import components  # noqa: F401  (sets TF_USE_LEGACY_KERAS before any TensorFlow import)
