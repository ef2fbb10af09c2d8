"""`python -m pipeline …`: same as the `visionline` command."""

import components.environment  # noqa: F401  (Keras 2 before TensorFlow loads)
from pipeline.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
