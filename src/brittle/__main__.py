"""``python -m brittle``: the ``brittle`` command (what ``torchrun ... -m brittle`` runs)."""

import sys

from brittle.cli import main

if __name__ == "__main__":
    sys.exit(main())
