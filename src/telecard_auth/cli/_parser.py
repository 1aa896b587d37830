"""The command line: the options, the commands and the command that runs each, and the fields
of each command's answer (which ``--print`` may name).

``parse`` turns the arguments into a namespace whose ``handler`` runs the command; a command line
that does not parse is a ``UsageError`` or an ``UnknownCommand``, never a printed complaint.
"""

from __future__ import annotations

import argparse
import re
import textwrap
from collections.abc import Callable, Sequence
from typing import NoReturn, TypeAlias

import attrs

from telecard_auth._core.model import DEFAULT_SERVICES, SAUDI_PROVIDERS, SubjectKind
from telecard_auth._core.text import clip
from telecard_auth._version import __version__
from telecard_auth.cli import _admin, _codes, _demo, _keys, _receipts
from telecard_auth.cli._errors import UnknownCommand, UnknownField, UsageError
from telecard_auth.cli._help import EXAMPLES, EXIT_TABLE, FILES, epilog
from telecard_auth.cli._output import Outcome, one_line
from telecard_auth.cli._settings import (
    DATABASE_NAME,
    DEMO_DATABASE,
    ENV_CODE,
    ENV_ID,
    ENV_KEYS,
    ENV_LANG,
    ENV_RECIPIENT_ID,
    ENV_STORAGE,
    KEY_FILE_NAME,
    PROG,
    Settings,
)

__all__ = ["Command", "build_parser", "parse"]

#: What runs a command: the parsed arguments and the settings in, the outcome out.
Command: TypeAlias = Callable[[argparse.Namespace, Settings], Outcome]


class _Parser(argparse.ArgumentParser):
    """An argument parser that raises its complaints instead of printing them and exiting."""

    def error(self, message: str) -> NoReturn:
        unknown = re.match(r"argument COMMAND: invalid choice: '([^']*)'", message)
        if unknown is not None:
            raise UnknownCommand(command=clip(unknown.group(1)), prog=self.prog)
        raise UsageError(detail=one_line(message), prog=self.prog)


def _positive(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of at least 1, not {clip(text)!r}"
        )
    return value


def _common_options() -> _Parser:
    # Accepted before and after the command. SUPPRESS keeps a subcommand from resetting a value
    # given before it.
    common = _Parser(add_help=False, allow_abbrev=False)
    group = common.add_argument_group("common options")
    hidden = argparse.SUPPRESS
    group.add_argument(
        "--storage",
        metavar="URL",
        default=hidden,
        help="where codes are kept: sqlite:///path.db, postgresql://..., redis://...; - reads it"
        " from standard input, keeping a password out of the process list (default:"
        f" ${ENV_STORAGE}, else $TELECARD_AUTH_HOME/{DATABASE_NAME})",
    )
    group.add_argument(
        "--keys",
        metavar="PATH",
        default=hidden,
        help=f"the key file (default: ${ENV_KEYS}, else $TELECARD_AUTH_HOME/{KEY_FILE_NAME})",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=hidden,
        help='print one JSON object on stdout, the result or {"error": {...}}',
    )
    group.add_argument(
        "--print",
        metavar="FIELD",
        default=hidden,
        help="print only this field of the result, on one line, for a shell to capture, e.g."
        " CODE=$(... issue ... --print code); the fields are those of --json",
    )
    group.add_argument(
        "--lang",
        choices=("en", "ar"),
        default=hidden,
        help=f"language of messages: en (English) or ar (Arabic) (default: ${ENV_LANG}, else en)",
    )
    group.add_argument(
        "--debug", action="store_true", default=hidden, help="on a failure, show the traceback too"
    )
    return common


def _subject_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kind",
        required=True,
        choices=[kind.value for kind in SubjectKind],
        help="the kind of customer",
    )
    parser.add_argument(
        "--id",
        metavar="ID",
        help="national ID (citizen, 1...), Iqama (resident, 2...), unified number (company, 7...)"
        " or government identifier; ASCII or Arabic-Indic digits; - reads it from standard input;"
        f" required unless ${ENV_ID} is set",
    )


def _binding_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--msisdn", metavar="NUMBER", help="the Saudi mobile number, e.g. 0551234567"
    )
    parser.add_argument(
        "--recipient-kind",
        choices=[kind.value for kind in SubjectKind],
        help="for a number transfer: the kind of the person receiving the number",
    )
    parser.add_argument(
        "--recipient-id",
        metavar="ID",
        help="for a number transfer: that person's identifier; - reads it from standard input;"
        f" given --recipient-kind alone, ${ENV_RECIPIENT_ID} is used",
    )


_PROVIDERS = ", ".join(provider.id for provider in SAUDI_PROVIDERS)
_SERVICES = ", ".join(service.id for service in DEFAULT_SERVICES)
_FORMATTER = argparse.RawDescriptionHelpFormatter


@attrs.frozen
class _Commands:
    """A group of commands, each with the common options, its help and its examples."""

    group: argparse._SubParsersAction[_Parser]
    common: _Parser

    def add(
        self,
        name: str,
        handler: Command | None,
        summary: str,
        description: str,
        *,
        fields: Sequence[str] = (),
    ) -> _Parser:
        """Add the command ``name``, run by ``handler``, whose answer has ``fields``."""
        sub = self.group.add_parser(
            name.rsplit(maxsplit=1)[-1],
            parents=[self.common],
            help=summary,
            description=textwrap.fill(description, width=79),
            epilog=epilog(name) if name in EXAMPLES else None,
            formatter_class=_FORMATTER,
            allow_abbrev=False,
        )
        if handler is not None:
            sub.set_defaults(handler=handler, fields=tuple(fields), prog=sub.prog)
        return sub

    def under(self, parser: _Parser, dest: str) -> _Commands:
        """The group of commands under ``parser`` (``keys``, ``receipt``)."""
        group = parser.add_subparsers(
            dest=dest, metavar="COMMAND", required=True, parser_class=_Parser
        )
        return _Commands(group, self.common)


def build_parser() -> argparse.ArgumentParser:
    """The command line parser: common options, then one subcommand (``keys`` and ``receipt``
    have their own)."""
    common = _common_options()
    parser = _Parser(
        prog=PROG,
        description=(
            "Issue and redeem Saudi SIM authentication codes.\n"
            "إصدار رموز توثيق بطاقات الاتصال واستخدامها.\n\n"
            f"Start with `{PROG} demo`, then `{PROG} init`. Reference: docs/cli.md."
        ),
        epilog=f"{EXIT_TABLE}\n\n{FILES}",
        formatter_class=_FORMATTER,
        parents=[common],
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )
    every = _Commands(commands, common)
    for add in (
        _add_setup,
        _add_codes,
        _add_lookups,
        _add_purge,
        _add_keys,
        _add_receipt,
        _add_demo,
    ):
        add(every)
    return parser


def _add_setup(commands: _Commands) -> None:
    init = commands.add(
        "init",
        _admin.init,
        "make the key file and the database / إنشاء ملف المفاتيح وقاعدة البيانات",
        "Make the key file (HMAC key k1, pseudonym key p1, receipt signing key r1; mode 0600 in"
        " a 0700 directory) and create the storage's schema. Refuses to replace a key file.",
        fields=_admin.INIT_FIELDS,
    )
    init.add_argument(
        "--force",
        action="store_true",
        help="replace an existing key file (codes issued with the old keys become unusable)",
    )
    commands.add(
        "migrate",
        _admin.migrate,
        "create or upgrade the storage schema / إنشاء مخطط التخزين أو ترقيته",
        "Create or upgrade the storage's schema; safe to run again. init does this too; use it"
        " for a new storage with existing keys, or after an upgrade.",
        fields=_admin.MIGRATE_FIELDS,
    )


def _add_codes(commands: _Commands) -> None:
    issue = commands.add(
        "issue",
        _codes.issue,
        "issue a code to a customer for one provider / إصدار رمز لعميل لدى مزود واحد",
        "Issue a code to an authenticated customer for one provider. Prints the code (show it to"
        " the customer once: only its digest is stored), its id and when it expires.",
        fields=_codes.ISSUE_FIELDS,
    )
    _subject_options(issue)
    issue.add_argument("--provider", required=True, help=f"the provider: {_PROVIDERS}")
    issue.add_argument(
        "--service", help=f"bind the code to one service: {_SERVICES} (default: any)"
    )
    _binding_options(issue)
    _add_redeem(commands)


def _add_redeem(commands: _Commands) -> None:
    redeem = commands.add(
        "redeem",
        _codes.redeem,
        "use a code, once, for a service / استخدام رمز مرة واحدة لخدمة",
        "Use a code, once, for one service, at the provider it was issued for. Prints the"
        " redemption and its signed receipt. The code may be typed with spaces, hyphens or"
        " Arabic-Indic digits.",
        fields=_codes.REDEEM_FIELDS,
    )
    _subject_options(redeem)
    redeem.add_argument("--provider", required=True, help=f"the provider: {_PROVIDERS}")
    redeem.add_argument(
        "--code",
        help="the code as the customer gave it; - reads it from standard input; required unless"
        f" ${ENV_CODE} is set",
    )
    redeem.add_argument("--service", required=True, help=f"the service: {_SERVICES}")
    _binding_options(redeem)
    redeem.add_argument(
        "--request-id",
        metavar="ID",
        help="1-64 printable ASCII characters naming this attempt: repeating it with the same"
        " inputs returns the same redemption and receipt instead of 'already used'",
    )
    redeem.add_argument(
        "--reference",
        metavar="REF",
        help="1-64 printable ASCII characters naming the agent or branch: recorded in the audit"
        " events, never stored",
    )


def _add_lookups(commands: _Commands) -> None:
    for name, handler, summary, description in (
        (
            "status",
            _codes.status,
            "show the state of a code / عرض حالة رمز",
            "Show the state of one of a customer's codes.",
        ),
        (
            "revoke",
            _codes.revoke,
            "cancel a code / إلغاء رمز",
            "Cancel one of a customer's live codes; prints its state afterwards.",
        ),
    ):
        lookup = commands.add(name, handler, summary, description, fields=_codes.STATUS_FIELDS)
        _subject_options(lookup)
        lookup.add_argument(
            "--code-id", required=True, metavar="CODE_ID", help="the code id that issue printed"
        )


def _add_purge(commands: _Commands) -> None:
    purge = commands.add(
        "purge",
        _admin.purge,
        "delete records that no longer matter / حذف السجلات المنتهية",
        "Delete the records of customers whose codes have all expired and passed the retention"
        " period. Runs batches until one comes back short (or one batch with --once). Needs no"
        " key file.",
        fields=_admin.PURGE_FIELDS,
    )
    purge.add_argument(
        "--batch-size",
        type=_positive,
        default=1000,
        metavar="N",
        help="customers per batch (default: 1000)",
    )
    purge.add_argument("--once", action="store_true", help="run one batch only")


def _add_keys(commands: _Commands) -> None:
    keys = commands.add(
        "keys",
        None,
        "rotate keys, print public keys / تدوير المفاتيح وعرض المفاتيح العامة",
        "Manage the key file.",
    )
    keys_commands = commands.under(keys, "keys_command")
    rotate = keys_commands.add(
        "keys rotate",
        _keys.rotate,
        "add a new current key (both kinds unless one is named)",
        "Add a new HMAC key and/or receipt signing key; the new one becomes current. No key is"
        " removed, so live codes keep working and old receipts keep verifying. Prints the new key"
        " ids; publish the new public JWK Set (keys public --jwks) to operators.",
        fields=_keys.ROTATE_FIELDS,
    )
    rotate.add_argument("--hmac", action="store_true", help="add a new HMAC key")
    rotate.add_argument("--signing", action="store_true", help="add a new receipt signing key")
    rotate.add_argument(
        "--pseudonym",
        action="store_true",
        help="the next step of a pseudonym key rotation: add a new key in standby, then (run"
        " again once every node has it) make it current",
    )
    move = keys_commands.add(
        "keys move",
        _keys.move,
        "move every customer to the new pseudonym key, then retire the old one",
        "Once the new pseudonym key is current on every node, move every customer still filed"
        " under the older key, in batches, while the service runs; then remove the older key"
        " from the key file.",
        fields=_keys.MOVE_FIELDS,
    )
    move.add_argument(
        "--batch-size",
        type=_positive,
        default=1000,
        metavar="N",
        help="customers per batch (default: 1000)",
    )
    public = keys_commands.add(
        "keys public",
        _keys.public,
        "print the public JWK Set for operators",
        "Print the receipt signing keys' public halves. With --jwks, print them as a JWK Set"
        " (RFC 7517) for operators to verify receipts with any JOSE library: save it to a file"
        " or serve it (receipt verify --jwks FILE).",
        fields=_keys.PUBLIC_FIELDS,
    )
    public.add_argument(
        "--jwks", action="store_true", help="print the public JWK Set as JSON, for operators"
    )


def _add_receipt(commands: _Commands) -> None:
    receipt = commands.add(
        "receipt",
        None,
        "verify a redemption receipt / التحقق من إيصال استخدام",
        "Work with redemption receipts.",
    )
    verify = commands.under(receipt, "receipt_command").add(
        "receipt verify",
        _receipts.verify,
        "check that a receipt is authentic",
        "Check a receipt's signature and audience, and print its fields. Uses the JWK Set"
        " given, or else the key file's keys.",
        fields=_receipts.VERIFY_FIELDS,
    )
    verify.add_argument(
        "receipt", metavar="RECEIPT", help="the receipt (a JWT, eyJ...), or - for stdin"
    )
    verify.add_argument(
        "--provider",
        required=True,
        metavar="ID",
        help="the provider verifying it: the receipt's audience (aud) must be this id",
    )
    verify.add_argument(
        "--service", metavar="ID", help="require the receipt to be for this service"
    )
    verify.add_argument(
        "--jwks",
        metavar="FILE",
        help="the public JWK Set to verify with (as keys public --jwks prints); else the key"
        " file's keys",
    )


def _add_demo(commands: _Commands) -> None:
    commands.add(
        "demo",
        _demo.demo,
        "walk through the rules, end to end / عرض توضيحي من البداية إلى النهاية",
        f"Walk through issuing and redeeming codes with throwaway keys and a manual clock. The"
        f" storage is --storage, or the SQLite file {DEMO_DATABASE}, started afresh on each run"
        f" ({ENV_STORAGE} is ignored: the demo never writes into real data).",
        fields=_demo.DEMO_FIELDS,
    )


# Code ids are URL-safe base64 and may begin with '-', which argparse takes for an option.
_ID_OPTIONS = frozenset(("--code-id", "--request-id"))
_OPTION_SHAPE = re.compile(r"-[a-zA-Z]|--[a-z]+(?:-[a-z]+)*(?:=.*)?", re.DOTALL)


def _glue(arguments: Sequence[str]) -> list[str]:
    """Write ``--code-id -Abc`` as ``--code-id=-Abc`` so that an id may start with '-'."""
    glued: list[str] = []
    index = 0
    while index < len(arguments):
        token = arguments[index]
        following = arguments[index + 1] if index + 1 < len(arguments) else None
        if (
            token in _ID_OPTIONS
            and following is not None
            and following.startswith("-")
            and not _OPTION_SHAPE.fullmatch(following)
        ):
            glued.append(f"{token}={following}")
            index += 2
        else:
            glued.append(token)
            index += 1
    return glued


def parse(arguments: Sequence[str]) -> argparse.Namespace:
    """The command line ``arguments``, parsed, with ``--print FIELD`` checked before anything runs.

    ``handler`` runs the command; a field its answer does not have is an ``UnknownField``.
    """
    args = build_parser().parse_args(_glue(arguments))
    field = getattr(args, "print", None)
    command, fields = _answer(args)
    if field is not None and field not in fields:
        raise UnknownField(command=command, field=clip(field), fields=", ".join(fields))
    return args


def _answer(args: argparse.Namespace) -> tuple[str, tuple[str, ...]]:
    """The command, as typed, and the fields of its answer."""
    if getattr(args, "pseudonym", False):  # a step of its own, with an answer of its own
        return f"{args.prog} --pseudonym", _keys.PSEUDONYM_STEP_FIELDS
    prog: str = args.prog
    fields: tuple[str, ...] = args.fields
    return prog, fields
