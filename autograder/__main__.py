"""``python -m autograder`` and the ``fcnkit-grade`` command: see :mod:`autograder.frontends.cli`."""
import sys

from .frontends.cli import main

if __name__ == "__main__":
    sys.exit(main())
