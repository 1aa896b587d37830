"""``python -m telecard_auth demo``: run the end-to-end demonstration."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from telecard_auth._demo import run_demo
from telecard_auth._errors import TelecardAuthError
from telecard_auth._urls import storage_from_url

#: Where the demonstration keeps its codes unless told otherwise: SQLite, the embedded default.
DEMO_DATABASE = "telecard-demo.db"

_USAGE = (
    "usage: python -m telecard_auth demo [--storage URL]\n"
    "الاستخدام: python -m telecard_auth demo [--storage URL]\n"
    "\n"
    "demo   walk through issuing and redeeming codes, end to end\n"
    "       عرض توضيحي لإصدار الرموز واستخدامها من البداية إلى النهاية\n"
    f"       --storage URL   where to keep the codes (default: sqlite:///{DEMO_DATABASE},\n"
    "                       started afresh on each run)"
)


def _demo(url: str | None) -> int:
    if url is None:
        # The default database belongs to the demo alone: each walk starts from an empty file.
        for suffix in ("", "-wal", "-shm"):
            Path(DEMO_DATABASE + suffix).unlink(missing_ok=True)
        url = f"sqlite:///{DEMO_DATABASE}"
    storage = storage_from_url(url)
    migrate = getattr(storage, "migrate", None)
    if migrate is not None:
        migrate()
    try:
        return run_demo(storage)
    finally:
        close = getattr(storage, "close", None)
        if close is not None:
            close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["-h"], ["--help"]):
        print(_USAGE)
        return 0
    if args[:1] == ["demo"] and len(args) in (1, 3) and args[1:2] in ([], ["--storage"]):
        try:
            return _demo(args[2] if len(args) == 3 else None)  # noqa: PLR2004
        except TelecardAuthError as error:
            print(f"error: {error.message_en}\nخطأ: {error.message_ar}", file=sys.stderr)
            return 1
    print(_USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
