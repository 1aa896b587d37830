"""``python -m telecard_auth demo``: run the end-to-end demonstration."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from telecard_auth._demo import run_demo

_USAGE = (
    "usage: python -m telecard_auth demo\n"
    "الاستخدام: python -m telecard_auth demo\n"
    "\n"
    "demo   walk through issuing and redeeming codes, end to end\n"
    "       عرض توضيحي لإصدار الرموز واستخدامها من البداية إلى النهاية"
)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["demo"]:
        return run_demo()
    if args in (["-h"], ["--help"]):
        print(_USAGE)
        return 0
    print(_USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
