"""`python -m pipeline …`: same as the `visionline` command."""

from pipeline.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
