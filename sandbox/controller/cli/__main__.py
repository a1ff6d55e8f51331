"""`python -m sandbox.controller.cli ...`: the same as the `sandbox` console script."""
import sys

from sandbox.controller.cli import main

if __name__ == "__main__":
    sys.exit(main())
