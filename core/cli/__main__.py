"""``python -m core.cli``: the headless trainer's entry point."""

import sys

from .main import main

if __name__ == "__main__":
    sys.exit(main())
