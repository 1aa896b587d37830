"""``python -m telecard_auth``: the ``telecard-auth`` command; see ``telecard_auth.cli``."""

from __future__ import annotations

import sys

from telecard_auth.cli import main

if __name__ == "__main__":
    sys.exit(main())
