"""visionline pipeline package: configuration, the TFX DAG, its runners, the CLI and run summaries.

Importing it has no side effects: the entry points (`visionline`, `python -m pipeline`) import
`components.environment` first, which pins Keras 2 before TensorFlow loads.
"""
