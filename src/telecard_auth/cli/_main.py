"""``main``: run the command once, and turn whatever happens into output and an exit status."""

from __future__ import annotations

import io
import sys
import traceback
from collections.abc import Sequence
from typing import TextIO

from telecard_auth._core.errors import TelecardAuthError
from telecard_auth.cli._errors import INTERRUPTED, UNEXPECTED, Interrupted, Unexpected, exit_status
from telecard_auth.cli._output import report, report_error
from telecard_auth.cli._parser import Command, parse
from telecard_auth.cli._settings import early_settings, read_secrets, settings_from

__all__ = ["main"]


def _tolerant(stream: TextIO) -> None:
    # Arabic must not turn into a crash on a terminal that cannot show it.
    if isinstance(stream, io.TextIOWrapper) and (stream.encoding or "").lower() not in (
        "utf-8",
        "utf8",
    ):
        stream.reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    for stream in (sys.stdout, sys.stderr):
        _tolerant(stream)
    lang, as_json, debug = early_settings(arguments)
    try:
        try:
            args = parse(arguments)
        except SystemExit as done:  # --help and --version print, then exit
            return done.code if isinstance(done.code, int) else 0
        read_secrets(args)
        settings = settings_from(args)
        lang, as_json, debug = settings.lang, settings.json, settings.debug
        handler: Command = args.handler
        outcome = handler(args, settings)
    except TelecardAuthError as error:
        if debug:
            traceback.print_exc()
        report_error(error, lang=lang, as_json=as_json)
        return exit_status(error)
    except KeyboardInterrupt:
        report_error(Interrupted(), lang=lang, as_json=as_json)
        return INTERRUPTED
    except Exception as error:
        if debug:
            traceback.print_exc()
        report_error(Unexpected(kind=type(error).__name__), lang=lang, as_json=as_json)
        return UNEXPECTED
    report(outcome, lang=lang, as_json=as_json, field=settings.field)
    return outcome.status
