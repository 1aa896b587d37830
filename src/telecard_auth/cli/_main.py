"""``main``: run the command once, and turn whatever happens into output and an exit status.

With no arguments at all the command prints its full help and exits with the usage status (2).
A reader that goes away early (``telecard-auth demo | head -1``) ends the command quietly, with
the status of a process that SIGPIPE ended (141), as Python's documentation of ``signal``
recommends: no traceback, no complaint.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import traceback
from collections.abc import Sequence
from typing import TextIO

from telecard_auth._core.errors import InvalidInput, TelecardAuthError
from telecard_auth.cli._errors import INTERRUPTED, UNEXPECTED, Interrupted, Unexpected, exit_status
from telecard_auth.cli._output import report, report_error
from telecard_auth.cli._parser import Command, build_parser, parse
from telecard_auth.cli._settings import early_settings, read_secrets, settings_from

__all__ = ["CLOSED_PIPE", "main"]

#: The exit status when the reader of the output goes away: 128 + SIGPIPE (13), what a shell
#: reports for a process that SIGPIPE ended.
CLOSED_PIPE = 141


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
    try:
        status = _run(arguments)
        # Written out here, where a closed pipe can still be answered, not at the exit.
        sys.stdout.flush()
    except BrokenPipeError:
        _silence()
        return CLOSED_PIPE
    return status


def _silence() -> None:
    """Point standard output and error at the null device: Python flushes them at the exit, and
    the output left in their buffers must not raise a second BrokenPipeError there."""
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        for stream in (sys.stdout, sys.stderr):
            # A stream that is no file (a test's capture) has nothing to flush to a pipe.
            with contextlib.suppress(OSError, ValueError):
                os.dup2(null, stream.fileno())
    finally:
        os.close(null)


def _run(arguments: list[str]) -> int:
    if not arguments:
        build_parser().print_help()
        return exit_status(InvalidInput())
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
    except BrokenPipeError:
        raise  # the reader went away: nothing to report, and nobody to report it to
    except Exception as error:
        if debug:
            traceback.print_exc()
        report_error(Unexpected(kind=type(error).__name__), lang=lang, as_json=as_json)
        return UNEXPECTED
    report(outcome, lang=lang, as_json=as_json, field=settings.field)
    return outcome.status
