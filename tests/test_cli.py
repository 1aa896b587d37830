"""Tests for the ``telecard-auth`` command: its files, its commands, its output and its failures.

Most tests run ``main`` in-process against a home directory that no other user can change (see
``private_root``); a few run ``python -m telecard_auth`` as a real process. No failure may ever
show a traceback.
"""

from __future__ import annotations

import ast
import functools
import io
import json
import os
import re
import shlex
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

import telecard_auth.cli
from telecard_auth import (
    CodeExpired,
    CodeIssuer,
    CollectingSink,
    ConfigurationError,
    InvalidIdentifier,
    InvalidInput,
    LiveCodeLimitReached,
    ManualClock,
    MissingExtra,
    SQLiteStorage,
    StorageError,
    Subject,
    TelecardAuthError,
    UnknownCode,
    UnknownSigningKey,
    WrongCode,
    events,
    verify_receipt,
)
from telecard_auth._issuer import shell as _issuer  # where code ids are made
from telecard_auth.cli import (
    DATABASE_NAME,
    ENV_HOME,
    ENV_KEYS,
    ENV_LANG,
    ENV_STORAGE,
    EXAMPLES,
    KEY_FILE_NAME,
    NoRotation,
    UsageError,
    build_parser,
    exit_status,
    main,
)
from telecard_auth.cli._parser import parse
from telecard_auth.keys import KeySet, load_keys, save_keys

CITIZEN = "1000000008"
RESIDENT = "2129040479"
COMPANY = "7000000001"
TO_ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
TO_EXTENDED_ARABIC_INDIC = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
#: The variables that keep secrets off the command line; named here as users type them.
SECRET_VARIABLES = ("TELECARD_AUTH_CODE", "TELECARD_AUTH_ID", "TELECARD_AUTH_RECIPIENT_ID")

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX owners and permissions")
root_only = pytest.mark.skipif(
    os.name != "posix" or os.geteuid() != 0, reason="only root can give a file to another user"
)
#: A user id that is not ours (nobody, on most systems).
SOMEONE_ELSE = 65534


@attrs.frozen
class Run:
    """What one command did: its exit status and what it printed."""

    status: int
    out: str
    err: str

    def json(self) -> Any:
        lines = self.out.splitlines()
        assert 1 == len(lines), self.out
        return json.loads(lines[0])

    @property
    def error_line(self) -> str:
        lines = self.err.splitlines()
        assert 1 == len(lines), self.err
        return lines[0]


#: ``cli("issue", ...)``: run the command in-process.
Cli = Callable[..., Run]


@pytest.fixture
def home(tmp_path: Path, private: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty home directory for the command, named by TELECARD_AUTH_HOME; cwd is tmp_path."""
    for name in (ENV_KEYS, ENV_STORAGE, ENV_LANG, *SECRET_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    folder = private / "home"
    monkeypatch.setenv(ENV_HOME, str(folder))
    monkeypatch.chdir(tmp_path)
    return folder


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """``cli("issue", ...)`` runs the command in-process and returns its ``Run``."""

    def run(*arguments: str) -> Run:
        status = main(list(arguments))
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err
        return Run(status, captured.out, captured.err)

    return run


@pytest.fixture
def ready(home: Path, cli: Cli) -> Path:
    """A home that ``init`` has set up."""
    assert 0 == cli("init").status
    return home


def issue(cli: Cli, *extra: str, identifier: str = CITIZEN, provider: str = "stc") -> Any:
    run = cli(
        "--json", "issue", "--kind", "citizen", "--id", identifier, "--provider", provider, *extra
    )
    assert 0 == run.status, run.out
    return run.json()


def redeem(
    cli: Cli, code: str, *extra: str, service: str = "new_line", provider: str = "stc"
) -> Run:
    return cli(
        "redeem",
        "--kind",
        "citizen",
        "--id",
        CITIZEN,
        "--provider",
        provider,
        "--service",
        service,
        "--code",
        code,
        *extra,
    )


def python_m(
    *arguments: str, env: dict[str, str], cwd: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "telecard_auth", *arguments],
        cwd=cwd,
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )


# --- init and the key file ---------------------------------------------------------------------


def test_init_makes_an_owner_only_key_file_and_a_migrated_database(home: Path, cli: Cli) -> None:
    run = cli("--json", "init")
    assert 0 == run.status
    answer = run.json()
    keys_path = home / KEY_FILE_NAME
    assert str(keys_path) == answer["key_file"]
    assert 0o600 == stat.S_IMODE(keys_path.stat().st_mode)
    assert 0o700 == stat.S_IMODE(home.stat().st_mode)
    assert not [p for p in home.iterdir() if p.name.endswith(".tmp")]
    keys = load_keys(keys_path)
    assert ("k1", "r1") == (answer["hmac_key_id"], answer["signing_key_id"])
    assert keys.public_jwks() == answer["jwks"]
    document = json.loads(keys_path.read_text())
    assert [("k1", "oct", "hmac"), ("p1", "oct", "pseudonym"), ("r1", "OKP", "receipt")] == [
        (jwk["kid"], jwk["kty"], jwk["role"]) for jwk in document["keys"]
    ]
    with SQLiteStorage(home / DATABASE_NAME) as storage:
        assert 0 == storage.load("nobody").version  # the schema is there


def test_init_refuses_to_replace_a_key_file_unless_forced(home: Path, cli: Cli) -> None:
    assert 0 == cli("init").status
    before = (home / KEY_FILE_NAME).read_bytes()
    refused = cli("init")
    assert 6 == refused.status
    assert refused.error_line.startswith("error [key_file_exists]:")
    assert "--force" in refused.error_line
    assert before == (home / KEY_FILE_NAME).read_bytes()
    forced = cli("--json", "init", "--force")
    assert 0 == forced.status
    assert forced.json()["replaced"] is True
    assert before != (home / KEY_FILE_NAME).read_bytes()


def test_the_key_file_round_trips_and_rotation_keeps_every_key(private: Path) -> None:
    keys = KeySet.generate(datetime(2026, 1, 1, tzinfo=UTC))
    path = private / "new-folder" / "keys.json"
    save_keys(path, keys)
    assert 0o700 == stat.S_IMODE(path.parent.stat().st_mode)
    assert keys == load_keys(path)
    rotated = keys.rotated(datetime(2026, 2, 1, tzinfo=UTC), hmac=True, signing=False)
    save_keys(path, rotated)
    again = load_keys(path)
    assert ["k1", "k2"] == [key.key_id for key in again.keyring.keys]
    assert ["r1"] == [key.key_id for key in again.signer.keys]
    assert keys.keyring.pseudonym_keys == again.keyring.pseudonym_keys
    assert ["p1"] == [key.key_id for key in again.keyring.pseudonym_keys]
    assert datetime(2026, 2, 1, tzinfo=UTC) == again.added_at["k2"]


# --- the five-minute path: issue, redeem, verify, status -------------------------------------


def test_issue_redeem_verify_and_status(ready: Path, cli: Cli, tmp_path: Path) -> None:
    jwks = cli("keys", "public", "--jwks")
    assert 0 == jwks.status
    public = tmp_path / "jwks.json"
    public.write_text(jwks.out)
    assert [("OKP", "Ed25519", "r1")] == [
        (jwk["kty"], jwk["crv"], jwk["kid"]) for jwk in json.loads(jwks.out)["keys"]
    ]

    issued = issue(cli)
    assert re.fullmatch(r"[0-9]{8}", issued["code"])
    assert issued["display"] == f"{issued['code'][:4]} {issued['code'][4:]}"
    assert timedelta(hours=4) == datetime.fromisoformat(
        issued["expires_at"]
    ) - datetime.fromisoformat(issued["issued_at"])

    used = redeem(cli, issued["display"], "--json")
    assert 0 == used.status, used.out
    redemption = used.json()
    assert (issued["code_id"], "stc", "new_line") == (
        redemption["code_id"],
        redemption["provider"],
        redemption["service"],
    )
    assert CITIZEN not in used.out  # a pseudonym, never the identity number
    assert "r1" == redemption["receipt_key_id"]

    verified = cli(
        "--json",
        "receipt",
        "verify",
        redemption["receipt"],
        "--provider",
        "stc",
        "--jwks",
        str(public),
    )
    assert 0 == verified.status
    fields = verified.json()
    assert fields["verified"] is True
    assert (issued["code_id"], "new_line", redemption["customer_ref"]) == (
        fields["code_id"],
        fields["service"],
        fields["customer_ref"],
    )
    assert "subject_ref" not in redemption
    assert "subject_ref" not in fields

    status = cli(
        "--json", "status", "--kind", "citizen", "--id", CITIZEN, "--code-id", issued["code_id"]
    )
    assert 0 == status.status
    assert ("redeemed", "new_line") == (status.json()["state"], status.json()["redeemed_service"])


def test_people_read_the_code_in_groups_and_get_the_receipt_on_one_line(
    ready: Path, cli: Cli
) -> None:
    shown = cli("issue", "--kind", "citizen", "--id", CITIZEN, "--provider", "stc")
    assert 0 == shown.status
    code = re.search(r"^code: +([0-9]{4} [0-9]{4})$", shown.out, re.MULTILINE)
    code_id = re.search(r"^code id: +(\S+)$", shown.out, re.MULTILINE)
    assert code is not None
    assert code_id is not None
    assert "valid until:" in shown.out
    used = redeem(cli, code.group(1))
    assert 0 == used.status
    receipt = re.search(r"^receipt: +(eyJ\S+)$", used.out, re.MULTILINE)
    assert receipt is not None
    keys = load_keys(ready / KEY_FILE_NAME)
    assert code_id.group(1) == verify_receipt(receipt.group(1), keys.signer, audience="stc").code_id
    # the key file's keys
    assert 0 == cli("receipt", "verify", receipt.group(1), "--provider", "stc").status


def test_a_retry_with_the_same_request_id_gets_the_same_receipt(ready: Path, cli: Cli) -> None:
    code = issue(cli)["code"]
    first = redeem(cli, code, "--json", "--request-id", "counter-7-visit-1")
    again = redeem(cli, code, "--json", "--request-id", "counter-7-visit-1")
    assert 0 == first.status == again.status
    assert first.json()["receipt"] == again.json()["receipt"]
    other = redeem(cli, code, "--json")
    assert 4 == other.status
    assert "code_already_used" == other.json()["error"]["code"]


def test_a_receipt_can_be_read_from_stdin(
    ready: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    receipt = redeem(cli, issue(cli)["code"], "--json").json()["receipt"]
    monkeypatch.setattr(sys, "stdin", io.StringIO(receipt + "\n"))
    assert 0 == cli("receipt", "verify", "-", "--provider", "stc").status


def test_revoke_cancels_a_code(ready: Path, cli: Cli) -> None:
    issued = issue(cli)
    revoked = cli(
        "--json", "revoke", "--kind", "citizen", "--id", CITIZEN, "--code-id", issued["code_id"]
    )
    assert 0 == revoked.status
    assert "revoked" == revoked.json()["state"]
    refused = redeem(cli, issued["code"])
    assert 4 == refused.status
    assert refused.error_line.startswith("error [code_revoked]:")


# --- options and output ------------------------------------------------------------------------


def test_json_failures_are_one_object_on_stdout_and_nothing_on_stderr(
    ready: Path, cli: Cli
) -> None:
    run = cli("--json", "issue", "--kind", "citizen", "--id", "123", "--provider", "stc")
    assert 2 == run.status
    assert "" == run.err
    error = run.json()["error"]
    assert "invalid_identifier" == error["code"]
    assert "10 digits" in error["message"]


def test_common_options_may_follow_the_command(ready: Path, cli: Cli) -> None:
    run = cli(
        "issue", "--kind", "citizen", "--id", CITIZEN, "--provider", "stc", "--json", "--lang", "ar"
    )
    assert 0 == run.status
    assert "stc" == run.json()["provider"]


def test_lang_ar_gives_arabic_output_and_errors(ready: Path, cli: Cli) -> None:
    shown = cli("--lang", "ar", "issue", "--kind", "citizen", "--id", CITIZEN, "--provider", "zain")
    assert 0 == shown.status
    assert "الرمز:" in shown.out
    assert "زين" in shown.out
    refused = redeem(cli, "00000000", "--lang", "ar", provider="zain")
    assert 4 == refused.status
    assert refused.error_line == f"خطأ [wrong_code]: {WrongCode().message_ar}"
    as_json = redeem(cli, "00000000", "--lang", "ar", "--json", provider="zain")
    assert WrongCode().message_ar == as_json.json()["error"]["message"]


def test_the_language_can_come_from_the_environment(
    ready: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_LANG, "ar")
    assert cli("frobnicate").error_line.startswith("خطأ [unknown_command]:")
    assert cli("--lang", "en", "frobnicate").error_line.startswith("error [unknown_command]:")
    monkeypatch.setenv(ENV_LANG, "fr")
    run = cli("keys", "public")
    assert 6 == run.status
    assert ENV_LANG in run.error_line


def test_keys_and_storage_can_live_elsewhere(
    tmp_path: Path, private: Path, home: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = private / "secrets" / "telecard.json"
    database = tmp_path / "data.db"
    monkeypatch.setenv(ENV_KEYS, str(keys))
    monkeypatch.setenv(ENV_STORAGE, f"sqlite:///{database}")
    assert 0 == cli("init").status
    assert keys.exists()
    assert database.exists()
    assert not (home / KEY_FILE_NAME).exists()
    assert 0 == redeem(cli, issue(cli)["code"]).status
    # The options win over the environment.
    monkeypatch.setenv(ENV_KEYS, str(tmp_path / "nowhere.json"))
    assert 6 == cli("keys", "public").status
    assert 0 == cli("--keys", str(keys), "keys", "public").status


def test_a_code_id_may_begin_with_a_hyphen(
    ready: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_issuer, "new_code_id", lambda: "-dashFirst_12345")
    issued = issue(cli)
    assert "-dashFirst_12345" == issued["code_id"]
    status = cli("status", "--kind", "citizen", "--id", CITIZEN, "--code-id", "-dashFirst_12345")
    assert 0 == status.status
    assert "active" in status.out


def test_help_shows_the_exit_statuses_and_every_command_has_an_example(cli: Cli) -> None:
    run = cli("--help")
    assert 0 == run.status
    assert "exit status:" in run.out
    assert "TELECARD_AUTH_HOME" in run.out
    for name in EXAMPLES:
        shown = cli(*name.split(), "--help")
        assert 0 == shown.status
        assert "example" in shown.out
        assert all(f"$ {command}" in shown.out for _, command in EXAMPLES[name])


# The telecard-auth command in a shell line: after a pipe or variables, before a redirection.
_OUR_COMMAND = re.compile(r"(?:^|\| )(?:[A-Z_]+=\S* )*(telecard-auth .*?)(?: [|<>] .*)?$")


def _command_lines() -> list[str]:
    lines = [command for examples in EXAMPLES.values() for _, command in examples]
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        found = _OUR_COMMAND.search(line.removeprefix("$ ")) if line.startswith("$ ") else None
        if found is not None:
            lines.append(found.group(1))
    return lines


@pytest.mark.parametrize("line", _command_lines())
def test_every_documented_command_line_parses(line: str) -> None:
    """Each example in the help and each command line in docs/cli.md parses."""
    words = shlex.split(line)
    assert "telecard-auth" == words[0]
    args = build_parser().parse_args(words[1:])
    assert callable(args.handler)


# --- failures ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidIdentifier(kind="citizen", kind_ar="مواطن", reason="r", reason_ar="س"), 2),
        (
            LiveCodeLimitReached(
                limit=3, next_free=datetime(2026, 3, 1, tzinfo=UTC), retry_after=1
            ),
            3,
        ),
        (CodeExpired(expired_at=datetime(2026, 3, 1, tzinfo=UTC)), 4),
        (UnknownCode(), 5),
        (MissingExtra(feature="RedisStorage", extra="redis"), 6),
        (ConfigurationError(reason="r"), 6),
        (StorageError(reason="r"), 7),
        (UnknownSigningKey(), 8),
        (TelecardAuthError(), 1),
        (RuntimeError(), 1),
    ],
)
def test_exit_statuses_follow_the_error_families(error: BaseException, status: int) -> None:
    assert status == exit_status(error)


@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        (["frobnicate"], "unknown_command"),
        (["keys", "frobnicate"], "unknown_command"),
        (["issue", "--kind", "citizen", "--provider", "stc"], "usage"),
        (["issue", "--kind", "alien", "--id", CITIZEN, "--provider", "stc"], "usage"),
        (["purge", "--batch-size", "0"], "usage"),
        (["issue", "--kind", "citizen", "--id", CITIZEN, "--provider", "stc", "--colour"], "usage"),
    ],
)
def test_a_bad_command_line_is_one_line_and_exit_2(
    home: Path, cli: Cli, arguments: list[str], code: str
) -> None:
    run = cli(*arguments)
    assert 2 == run.status
    assert "" == run.out
    assert run.error_line.startswith(f"error [{code}]: ")
    as_json = cli("--json", *arguments)
    assert code == as_json.json()["error"]["code"]


def test_an_unknown_command_says_so(home: Path, cli: Cli) -> None:
    line = cli("frobnicate").error_line
    assert "Unknown command 'frobnicate'" in line
    assert "telecard-auth --help" in line


@pytest.mark.parametrize(
    ("kind", "identifier"),
    [
        ("citizen", "123"),
        ("citizen", "1000000009"),
        ("resident", CITIZEN),
        ("citizen", "10000000O8"),
    ],
)
def test_a_bad_id_is_refused_with_exit_2(ready: Path, cli: Cli, kind: str, identifier: str) -> None:
    run = cli("issue", "--kind", kind, "--id", identifier, "--provider", "stc")
    assert 2 == run.status
    assert run.error_line.startswith("error [invalid_identifier]:")
    assert identifier not in run.err  # messages name what is wrong, not the value


def test_ids_and_codes_in_arabic_indic_digits_are_accepted(ready: Path, cli: Cli) -> None:
    arabic_id = CITIZEN.translate(TO_ARABIC_INDIC)
    issued = issue(cli, identifier=arabic_id)
    typed = issued["display"].translate(TO_EXTENDED_ARABIC_INDIC)
    run = cli(
        "--json",
        "redeem",
        "--kind",
        "citizen",
        "--id",
        "١٠٠ ٠٠٠ ٠٠٠٨",
        "--provider",
        "stc",
        "--service",
        "new_line",
        "--code",
        typed,
    )
    assert 0 == run.status, run.out
    assert issued["code_id"] == run.json()["code_id"]
    status = cli("status", "--kind", "citizen", "--id", CITIZEN, "--code-id", issued["code_id"])
    assert "redeemed" in status.out  # the ASCII and Arabic-Indic IDs are one customer


def test_an_expired_code_is_refused_with_exit_4(ready: Path, cli: Cli) -> None:
    keys = load_keys(ready / KEY_FILE_NAME)
    five_hours_ago = ManualClock(datetime.now(UTC) - timedelta(hours=5))
    with SQLiteStorage(ready / DATABASE_NAME) as storage:
        issuer = CodeIssuer(storage, keyring=keys.keyring, clock=five_hours_ago, signer=keys.signer)
        old = issuer.issue(Subject.citizen(CITIZEN), "stc")
    run = redeem(cli, old.code)
    assert 4 == run.status
    assert run.error_line.startswith("error [code_expired]: The code expired at")
    assert "code_expired" == redeem(cli, old.code, "--json").json()["error"]["code"]


def test_the_live_code_limit_is_exit_3(ready: Path, cli: Cli) -> None:
    for _ in range(3):
        issue(cli)
    run = cli("issue", "--kind", "citizen", "--id", CITIZEN, "--provider", "stc")
    assert 3 == run.status
    assert run.error_line.startswith("error [live_code_limit]:")


def test_an_unknown_code_id_is_exit_5(ready: Path, cli: Cli) -> None:
    run = cli("status", "--kind", "citizen", "--id", CITIZEN, "--code-id", "no-such-code")
    assert 5 == run.status
    assert run.error_line.startswith("error [unknown_code]:")


def test_without_init_the_command_says_to_run_init(home: Path, cli: Cli) -> None:
    run = cli("issue", "--kind", "citizen", "--id", CITIZEN, "--provider", "stc")
    assert 6 == run.status
    assert run.error_line.startswith("error [not_initialized]:")
    assert "telecard-auth init" in run.error_line
    assert not home.exists()  # nothing was created behind the user's back


def test_a_missing_database_says_to_run_init(ready: Path, cli: Cli, tmp_path: Path) -> None:
    (ready / DATABASE_NAME).unlink()
    run = cli("issue", "--kind", "citizen", "--id", CITIZEN, "--provider", "stc")
    assert 6 == run.status
    assert run.error_line.startswith("error [database_missing]:")
    assert "telecard-auth init" in run.error_line
    assert not (ready / DATABASE_NAME).exists()
    missing = tmp_path / "elsewhere.db"
    elsewhere = cli("--storage", f"sqlite:///{missing}", "purge")
    assert 6 == elsewhere.status
    assert "database_missing" in elsewhere.err
    assert 0 == cli("--storage", f"sqlite:///{missing}", "migrate").status
    assert 0 == cli("--storage", f"sqlite:///{missing}", "purge").status


def test_a_bad_storage_url_is_exit_6(ready: Path, cli: Cli) -> None:
    run = cli("--storage", "nosuch://x", "purge")
    assert 6 == run.status
    assert run.error_line.startswith("error [invalid_storage_url]:")


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_key_file_open_to_others_is_refused_like_ssh(ready: Path, cli: Cli, mode: int) -> None:
    keys = ready / KEY_FILE_NAME
    keys.chmod(mode)
    run = cli("issue", "--kind", "citizen", "--id", CITIZEN, "--provider", "stc")
    assert 6 == run.status
    assert run.error_line.startswith("error [key_file_exposed]:")
    assert f"chmod 600 {keys}" in run.error_line
    keys.chmod(0o600)
    assert 0 == cli("keys", "public").status


def test_a_key_file_the_os_will_not_open_is_refused(
    ready: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An unreadable key file, on any machine and as any user (root reads any mode).
    keys = str(ready / KEY_FILE_NAME)
    real_open = os.open

    def guarded(path: Any, flags: int, *rest: Any, **options: Any) -> int:
        if os.fspath(path) == keys:
            raise PermissionError(13, "Permission denied", keys)
        return real_open(path, flags, *rest, **options)

    monkeypatch.setattr(os, "open", guarded)
    run = cli("issue", "--kind", "citizen", "--id", CITIZEN, "--provider", "stc")
    assert 6 == run.status
    assert run.error_line.startswith("error [key_file_unreadable]:")
    assert "permission denied" in run.error_line


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[]", "a JWK must be a JSON object"),
        (b'{"format": 1, "hmac_keys": []}', 'a JSON object with a "keys" list'),
        (b'{"keys": []}', 'a JSON object with a "keys" list'),
        (b'{"keys": [{"kty": "oct", "kid": "k1", "role": "hmac", "k": "!!"}]}', "keys[0]: k is"),
        (b'{"keys": [{"kty": "oct", "kid": "k1", "role": "hmac", "k": "AAAA"}]}', "32 bytes"),
        (b'{"keys": [{"kty": "oct", "kid": "k1", "k": "AAAA"}]}', "keys[0]: role and kty"),
    ],
)
def test_a_corrupt_key_file_is_refused_with_what_is_wrong(
    ready: Path, cli: Cli, content: bytes, reason: str
) -> None:
    (ready / KEY_FILE_NAME).write_bytes(content)
    run = cli(
        "redeem",
        "--kind",
        "citizen",
        "--id",
        CITIZEN,
        "--provider",
        "stc",
        "--service",
        "new_line",
        "--code",
        "12345678",
    )
    assert 6 == run.status
    assert run.error_line.startswith("error [key_file_unreadable]:")
    assert reason in run.error_line


def test_a_key_file_that_is_a_directory_is_refused(ready: Path, cli: Cli) -> None:
    run = cli("--keys", str(ready), "keys", "public")
    assert 6 == run.status
    assert "key_file_unreadable" in run.err


def test_tampered_and_malformed_receipts(ready: Path, cli: Cli) -> None:
    receipt = redeem(cli, issue(cli)["code"], "--json").json()["receipt"]
    head, payload, signature = receipt.split(".")
    forged = f"{head}.{payload}.{'A' * len(signature)}"
    assert 8 == cli("receipt", "verify", forged, "--provider", "stc").status
    assert 2 == cli("receipt", "verify", "not.a-receipt", "--provider", "stc").status
    elsewhere = cli("receipt", "verify", receipt, "--provider", "mobily")
    assert 8 == elsewhere.status
    assert elsewhere.error_line.startswith("error [receipt_mismatch]:")
    not_jwks = ready / "not-jwks.json"
    not_jwks.write_text('{"keys": "r1"}')
    bad_key = cli("receipt", "verify", receipt, "--provider", "stc", "--jwks", str(not_jwks))
    assert 2 == bad_key.status
    assert bad_key.error_line.startswith("error [invalid_argument]: The value of --jwks")


def test_an_incomplete_recipient_is_exit_2(ready: Path, cli: Cli) -> None:
    run = cli(
        "issue",
        "--kind",
        "citizen",
        "--id",
        CITIZEN,
        "--provider",
        "stc",
        "--recipient-id",
        RESIDENT,
    )
    assert 2 == run.status
    assert "invalid_argument" in run.err


def test_an_unexpected_failure_is_one_line_unless_debugging(
    ready: Path, cli: Cli, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*_: object, **__: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(CodeIssuer, "issue", explode)
    run = cli("issue", "--kind", "citizen", "--id", CITIZEN, "--provider", "stc")
    assert 1 == run.status
    assert run.error_line.startswith("error [internal_error]: Unexpected failure (RuntimeError)")
    assert 1 == main(
        ["--debug", "issue", "--kind", "citizen", "--id", CITIZEN, "--provider", "stc"]
    )
    assert "Traceback" in capsys.readouterr().err


# --- keys, purge, demo -------------------------------------------------------------------------


def test_rotation_keeps_old_codes_working_and_signs_with_the_new_key(
    ready: Path, cli: Cli, tmp_path: Path
) -> None:
    old_public = tmp_path / "old-jwks.json"
    old_public.write_text(cli("keys", "public", "--jwks").out)
    before = issue(cli)
    rotated = cli("--json", "keys", "rotate")
    assert 0 == rotated.status
    answer = rotated.json()
    assert ("k2", "r2") == (answer["hmac_key_id"], answer["signing_key_id"])
    assert ["r1", "r2"] == [jwk["kid"] for jwk in answer["jwks"]["keys"]]
    assert 0o600 == stat.S_IMODE((ready / KEY_FILE_NAME).stat().st_mode)

    used = redeem(cli, before["code"], "--json")
    assert 0 == used.status  # issued under k1, redeemed with k2 current
    receipt = used.json()["receipt"]
    assert "r2" == verify_receipt(receipt, answer["jwks"], audience="stc").key_id
    old_only = cli("receipt", "verify", receipt, "--provider", "stc", "--jwks", str(old_public))
    assert 8 == old_only.status
    assert old_only.error_line.startswith("error [unknown_signing_key]:")
    assert answer["jwks"] == json.loads(cli("keys", "public", "--jwks").out)
    assert ["r1", "r2"] == [jwk["kid"] for jwk in cli("--json", "keys", "public").json()["keys"]]
    assert 0 == cli("receipt", "verify", receipt, "--provider", "stc").status

    keys = load_keys(ready / KEY_FILE_NAME)
    after = issue(cli)
    with SQLiteStorage(ready / DATABASE_NAME) as storage:
        snapshot = CodeIssuer(storage, keyring=keys.keyring).status(
            Subject.citizen(CITIZEN), after["code_id"]
        )
    assert "active" == snapshot.state.value
    signing_only = cli("--json", "keys", "rotate", "--signing").json()
    assert (None, "r3") == (signing_only["hmac_key_id"], signing_only["signing_key_id"])
    assert ["k1", "k2"] == signing_only["hmac_key_ids"]


def test_operators_verify_with_the_public_jwk_set(ready: Path, cli: Cli, tmp_path: Path) -> None:
    receipt = redeem(cli, issue(cli)["code"], "--json").json()["receipt"]
    operator_keys = tmp_path / "jwks.json"
    operator_keys.write_text(cli("keys", "public", "--jwks").out)
    assert '"d"' not in operator_keys.read_text()
    verified = cli("receipt", "verify", receipt, "--provider", "stc", "--jwks", str(operator_keys))
    assert 0 == verified.status
    missing = cli(
        "receipt", "verify", receipt, "--provider", "stc", "--jwks", str(tmp_path / "none.json")
    )
    assert 2 == missing.status


def test_purge_deletes_finished_records_and_needs_no_keys(ready: Path, cli: Cli) -> None:
    keys = load_keys(ready / KEY_FILE_NAME)
    long_ago = ManualClock(datetime.now(UTC) - timedelta(days=3))
    with SQLiteStorage(ready / DATABASE_NAME) as storage:
        issuer = CodeIssuer(storage, keyring=keys.keyring, clock=long_ago)
        for subject in (Subject.resident(RESIDENT), Subject.company(COMPANY)):
            issuer.issue(subject, "stc")
    live = issue(cli)
    (ready / KEY_FILE_NAME).unlink()
    once = cli("--json", "purge", "--batch-size", "1", "--once")
    assert {"deleted": 1, "batches": 1} == once.json()
    rest = cli("--json", "purge", "--batch-size", "1")
    assert {"deleted": 1, "batches": 2} == rest.json()
    assert {"deleted": 0, "batches": 1} == cli("--json", "purge").json()
    with SQLiteStorage(ready / DATABASE_NAME) as storage:
        kept = CodeIssuer(storage, keyring=keys.keyring).status(
            Subject.citizen(CITIZEN), live["code_id"]
        )
    assert "active" == kept.state.value


def test_demo_walks_through_the_rules(
    tmp_path: Path, home: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_STORAGE, "nosuch://ignored-by-the-demo")
    run = cli("--json", "demo", "--storage", f"sqlite:///{tmp_path / 'demo.db'}")
    assert 0 == run.status
    answer = run.json()
    assert answer["ok"] is True
    assert "Every step behaved as the rules say." in answer["transcript"]
    shown = cli("demo")
    assert 0 == shown.status
    assert "SQLiteStorage('telecard-demo.db'" in shown.out
    assert (tmp_path / "telecard-demo.db").exists()


# --- as a real process -------------------------------------------------------------------------


def test_python_m_runs_the_command_end_to_end(tmp_path: Path, private: Path) -> None:
    env = {ENV_HOME: str(private / "home"), ENV_KEYS: "", ENV_STORAGE: "", ENV_LANG: ""}
    assert 0 == python_m("init", env=env, cwd=tmp_path).returncode
    issued = python_m(
        "--json",
        "issue",
        "--kind",
        "citizen",
        "--id",
        CITIZEN,
        "--provider",
        "stc",
        env=env,
        cwd=tmp_path,
    )
    assert 0 == issued.returncode, issued.stderr
    code = json.loads(issued.stdout)["code"]
    arguments = [
        "redeem",
        "--kind",
        "citizen",
        "--id",
        CITIZEN,
        "--provider",
        "stc",
        "--service",
        "new_line",
    ]
    used = python_m(*arguments, "--code", code, env=env, cwd=tmp_path)
    assert 0 == used.returncode, used.stderr
    assert "receipt:" in used.stdout
    again = python_m(*arguments, "--code", code, "--lang", "ar", env=env, cwd=tmp_path)
    assert 4 == again.returncode
    assert again.stderr.startswith("خطأ [code_already_used]:")


@pytest.mark.parametrize(
    ("arguments", "status"),
    [
        (["frobnicate"], 2),
        (["issue", "--kind", "citizen", "--id", "12", "--provider", "stc"], 2),
        (["issue", "--kind", "citizen", "--id", CITIZEN, "--provider", "stc"], 6),
    ],
)
def test_python_m_failures_are_one_line_without_a_traceback(
    tmp_path: Path, arguments: list[str], status: int
) -> None:
    env = {ENV_HOME: str(tmp_path / "no-home"), ENV_KEYS: "", ENV_STORAGE: "", ENV_LANG: ""}
    result = python_m(*arguments, env=env, cwd=tmp_path)
    assert status == result.returncode
    assert "Traceback" not in result.stderr
    assert 1 == len(result.stderr.splitlines())
    assert "" == result.stdout


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_python_m_refuses_a_readable_key_file(tmp_path: Path, private: Path) -> None:
    env = {ENV_HOME: str(private / "home"), ENV_KEYS: "", ENV_STORAGE: "", ENV_LANG: ""}
    assert 0 == python_m("init", env=env, cwd=tmp_path).returncode
    (private / "home" / KEY_FILE_NAME).chmod(0o644)
    result = python_m("keys", "public", env=env, cwd=tmp_path)
    assert 6 == result.returncode
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error [key_file_exposed]:")


# --- where a key file may live: owner, links and directories, as ssh checks them ----------------


def refusal(run: Run, code: str, key_file: Path | None = None) -> str:
    """The one line of a key-file refusal with ``code``, after checking it shows no key material."""
    assert 6 == run.status, run.out + run.err
    line = run.error_line
    assert re.match(rf"(error|خطأ) \[{code}\]: ", line), line
    if key_file is not None and key_file.exists() and not key_file.is_symlink():
        document = json.loads(key_file.read_text())
        for key in document["keys"]:
            assert key.get("k", key.get("d")) not in run.out + run.err
    return line


@posix_only
def test_a_symlink_to_a_good_key_file_is_refused(ready: Path, cli: Cli, private: Path) -> None:
    """A symbolic link is not followed, even to a good key file; the file itself is accepted."""
    keys = ready / KEY_FILE_NAME
    link = private / "link.json"
    link.symlink_to(keys)
    line = refusal(cli("--keys", str(link), "keys", "public"), "key_file_symlink", keys)
    assert f"The key file {link} is a symbolic link" in line
    assert 0 == cli("--keys", str(keys), "keys", "public").status


@posix_only
@pytest.mark.parametrize("mode", [0o770, 0o730, 0o703, 0o777])
def test_a_key_file_in_a_directory_others_can_write_is_refused(
    ready: Path, cli: Cli, mode: int
) -> None:
    """Group- or world-writable: others could put their own key file in its place."""
    keys = ready / KEY_FILE_NAME
    ready.chmod(mode)
    line = refusal(cli("keys", "public"), "key_directory_writable", keys)
    assert f"The directory {ready}, on the way to the key file {keys}," in line
    assert f"(mode {mode:04o})" in line
    assert line.endswith(f"or run: chmod go-w {ready}")
    arabic = refusal(cli("--lang", "ar", "keys", "public"), "key_directory_writable", keys)
    assert f"المجلد {ready}" in arabic
    assert arabic.endswith(f"أو شغّل: chmod go-w {ready}")
    ready.chmod(0o700)
    assert 0 == cli("keys", "public").status


@posix_only
@pytest.mark.parametrize("mode", [0o1777, 0o1770])
def test_a_key_file_in_a_sticky_shared_directory_is_refused(
    ready: Path, cli: Cli, mode: int
) -> None:
    """Sticky like /tmp is refused too, as ssh does; the fix is to move the key, not chmod /tmp."""
    keys = ready / KEY_FILE_NAME
    ready.chmod(mode)
    line = refusal(cli("keys", "public"), "key_directory_shared", keys)
    assert f"The directory {ready}, on the way to the key file {keys}, is shared" in line
    assert f"(mode {mode:04o}, like /tmp)" in line
    assert "chmod" not in line
    arabic = refusal(cli("--lang", "ar", "keys", "public"), "key_directory_shared", keys)
    assert "مجلد مشترك" in arabic


@posix_only
def test_init_makes_nothing_where_the_key_file_would_be_refused(
    private: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """init under a shared directory is refused before the database or a directory is made."""
    for name in (ENV_KEYS, ENV_STORAGE, ENV_LANG, *SECRET_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    shared = private / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    monkeypatch.setenv(ENV_HOME, str(shared / "home"))
    line = refusal(cli("init"), "key_directory_shared")
    assert f"The directory {shared}," in line
    assert [] == list(shared.iterdir())


@posix_only
def test_every_directory_up_to_the_root_is_checked(ready: Path, cli: Cli) -> None:
    """A writable directory further up is as bad as the key file's own; the nearest is named."""
    above = ready.parent
    above.chmod(0o777)
    line = refusal(cli("keys", "public"), "key_directory_writable", ready / KEY_FILE_NAME)
    assert f"The directory {above}," in line
    above.chmod(0o700)
    assert 0 == cli("keys", "public").status


@posix_only
def test_a_symlinked_directory_is_judged_where_it_leads(
    ready: Path, cli: Cli, private: Path
) -> None:
    """As ssh does, links in the directories are resolved and the real directories checked."""
    via = private / "via"
    via.symlink_to(ready, target_is_directory=True)
    keys = via / KEY_FILE_NAME
    assert 0 == cli("--keys", str(keys), "keys", "public").status
    ready.chmod(0o770)
    line = refusal(cli("--keys", str(keys), "keys", "public"), "key_directory_writable")
    assert f"The directory {ready}," in line


@root_only
def test_a_key_file_owned_by_another_user_is_refused(ready: Path, cli: Cli) -> None:
    """A 0600 key file that another user owns could be theirs: it is refused until it is ours."""
    keys = ready / KEY_FILE_NAME
    os.chown(keys, SOMEONE_ELSE, -1)
    line = refusal(cli("keys", "public"), "key_file_not_owned", keys)
    assert f"The key file {keys} belongs to another user (uid {SOMEONE_ELSE})" in line
    assert f"chown 0 {keys}" in line
    os.chown(keys, 0, -1)
    assert 0 == cli("keys", "public").status


@root_only
def test_a_directory_owned_by_another_user_is_refused(ready: Path, cli: Cli) -> None:
    """Whoever owns a directory on the way can swap the key file in it, whatever its mode."""
    os.chown(ready, SOMEONE_ELSE, -1)
    line = refusal(cli("keys", "public"), "key_directory_not_owned", ready / KEY_FILE_NAME)
    assert f"The directory {ready}, on the way to the key file" in line
    assert f"belongs to another user (uid {SOMEONE_ELSE})" in line
    os.chown(ready, 0, -1)
    assert 0 == cli("keys", "public").status


@root_only
def test_files_and_directories_owned_by_root_stay_trusted(
    ready: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """For any user, root's files and directories are trusted (as ssh trusts them); others' not."""
    keys = ready / KEY_FILE_NAME
    expected = load_keys(keys)
    monkeypatch.setattr(os, "geteuid", lambda: 4242)  # we are someone, reading root's files
    assert expected == load_keys(keys)
    os.chown(keys, SOMEONE_ELSE, -1)
    with pytest.raises(ConfigurationError) as refused:
        load_keys(keys)
    assert "key_file_not_owned" == refused.value.code
    os.chown(keys, 4242, -1)
    assert expected == load_keys(keys)


@posix_only
def test_a_named_pipe_is_refused_at_once(private: Path) -> None:
    """A FIFO where the key file should be is refused without waiting for a writer."""
    fifo = private / KEY_FILE_NAME
    os.mkfifo(fifo, 0o600)
    outcome: list[object] = []

    def read() -> None:
        try:
            outcome.append(load_keys(fifo))
        except ConfigurationError as error:
            outcome.append(error)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=5)
    finished = not reader.is_alive()
    if not finished:  # give the waiting reader a writer, so that it ends
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join()
    assert finished
    [error] = outcome
    assert isinstance(error, ConfigurationError)
    assert "key_file_unreadable" == error.code
    assert "not a regular file" in error.message_en


@posix_only
def test_keys_are_never_written_where_others_could_change_them(private: Path) -> None:
    """save_keys refuses a directory others can write and writes nothing there."""
    keys = KeySet.generate(datetime(2026, 1, 1, tzinfo=UTC))
    shared = private / "shared"
    shared.mkdir()
    for mode, code in ((0o770, "key_directory_writable"), (0o1777, "key_directory_shared")):
        shared.chmod(mode)
        with pytest.raises(ConfigurationError) as refused:
            save_keys(shared / KEY_FILE_NAME, keys)
        assert code == refused.value.code
        assert [] == list(shared.iterdir())
    with pytest.raises(ConfigurationError) as refused:  # nor in a new directory made there
        save_keys(shared / "inner" / KEY_FILE_NAME, keys)
    assert "key_directory_shared" == refused.value.code
    assert [] == list(shared.iterdir())


@posix_only
def test_keys_are_never_written_through_a_symlink(ready: Path, cli: Cli, private: Path) -> None:
    """save_keys, init --force and keys rotate leave a link and the file it points to alone."""
    keys = ready / KEY_FILE_NAME
    before = keys.read_bytes()
    link = private / "link.json"
    link.symlink_to(keys)
    with pytest.raises(ConfigurationError) as refused:
        save_keys(link, KeySet.generate(datetime(2026, 1, 1, tzinfo=UTC)))
    assert "key_file_symlink" == refused.value.code
    refusal(cli("--keys", str(link), "init", "--force"), "key_file_symlink", keys)
    refusal(cli("--keys", str(link), "keys", "rotate"), "key_file_symlink", keys)
    assert link.is_symlink()
    assert before == keys.read_bytes()


@posix_only
def test_init_makes_missing_directories_private(home: Path, cli: Cli, private: Path) -> None:
    """Every directory init has to make is 0700, whatever the umask, so the next run trusts it."""
    keys = private / "a" / "b" / KEY_FILE_NAME
    old = os.umask(0o002)
    try:
        assert 0 == cli("--keys", str(keys), "init").status
    finally:
        os.umask(old)
    modes = [stat.S_IMODE(folder.stat().st_mode) for folder in (keys.parent.parent, keys.parent)]
    assert [0o700, 0o700] == modes
    assert 0 == cli("--keys", str(keys), "keys", "public").status


# --- secrets off the command line: stdin and the environment -----------------------------------


def feed(monkeypatch: pytest.MonkeyPatch, text: str) -> io.StringIO:
    """Make ``text`` the command's standard input; the stream is returned to see what was read."""
    stream = io.StringIO(text)
    monkeypatch.setattr(sys, "stdin", stream)
    return stream


def test_redeem_reads_the_code_from_stdin(
    ready: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--code - takes the code from standard input, one line, and no output repeats it."""
    issued = issue(cli)
    feed(monkeypatch, issued["display"] + "\n")
    run = redeem(cli, "-", "--json")
    assert 0 == run.status, run.out
    assert issued["code_id"] == run.json()["code_id"]
    assert issued["code"] not in run.out + run.err


def test_the_id_is_read_from_stdin_with_any_line_ending(
    ready: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--id - takes the identity number from standard input, ending in LF, CRLF or nothing."""
    code_ids = []
    for line in (f"{CITIZEN}\n", f"{CITIZEN.translate(TO_ARABIC_INDIC)}\r\n", CITIZEN):
        feed(monkeypatch, line)
        run = cli("--json", "issue", "--kind", "citizen", "--id", "-", "--provider", "zain")
        assert 0 == run.status, run.out
        assert CITIZEN not in run.out + run.err
        code_ids.append(run.json()["code_id"])
    status = cli("--json", "status", "--kind", "citizen", "--id", CITIZEN, "--code-id", code_ids[0])
    assert "active" == status.json()["state"]  # the same customer as --id 1000000008


def test_the_recipients_id_is_read_from_stdin_or_the_environment(
    ready: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--recipient-id - or TELECARD_AUTH_RECIPIENT_ID names the recipient of --recipient-kind."""
    transfer = ("--provider", "stc", "--service", "number_transfer", "--recipient-kind", "resident")
    feed(monkeypatch, RESIDENT + "\n")
    issued = cli(
        "--json", "issue", "--kind", "citizen", "--id", CITIZEN, *transfer, "--recipient-id", "-"
    )
    assert 0 == issued.status, issued.out
    monkeypatch.setenv("TELECARD_AUTH_RECIPIENT_ID", "2000000006")  # another resident
    code = ("--code", issued.json()["code"])
    other = cli("--json", "redeem", "--kind", "citizen", "--id", CITIZEN, *transfer, *code)
    assert "binding_mismatch" == other.json()["error"]["code"]  # the recipient is another
    monkeypatch.setenv("TELECARD_AUTH_RECIPIENT_ID", RESIDENT)
    used = cli("--json", "redeem", "--kind", "citizen", "--id", CITIZEN, *transfer, *code)
    assert 0 == used.status, used.out
    assert RESIDENT not in used.out + used.err
    plain = issue(cli, provider="zain")  # no --recipient-kind: the variable plays no part
    assert plain["code_id"]


def test_the_code_and_the_id_can_come_from_the_environment(
    ready: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TELECARD_AUTH_ID and TELECARD_AUTH_CODE stand in for --id and --code; options win."""
    monkeypatch.setenv("TELECARD_AUTH_ID", CITIZEN)
    issued = cli("--json", "issue", "--kind", "citizen", "--provider", "stc")
    assert 0 == issued.status, issued.out
    code = issued.json()["code"]
    arguments = ("--json", "redeem", "--kind", "citizen", "--provider", "stc")
    monkeypatch.setenv("TELECARD_AUTH_CODE", "00000000")
    wrong = cli(*arguments, "--service", "new_line")
    assert "wrong_code" == wrong.json()["error"]["code"]
    monkeypatch.setenv("TELECARD_AUTH_ID", RESIDENT)
    used = cli(*arguments, "--service", "new_line", "--id", CITIZEN, "--code", code)
    assert 0 == used.status, used.out  # the options, not the variables
    monkeypatch.setenv("TELECARD_AUTH_ID", CITIZEN)
    monkeypatch.setenv("TELECARD_AUTH_CODE", code)
    again = cli(*arguments, "--service", "lost_sim_replacement")
    assert "code_already_used" == again.json()["error"]["code"]
    monkeypatch.setenv("TELECARD_AUTH_CODE", "")  # empty counts as unset
    unset = cli(*arguments, "--service", "new_line")
    assert "usage" == unset.json()["error"]["code"]


def test_a_missing_code_or_id_names_every_way_to_give_it(home: Path, cli: Cli) -> None:
    """Without --code (or --id), the usage error names the option, '-' and the variable."""
    run = cli(
        "redeem", "--kind", "citizen", "--id", CITIZEN, "--provider", "stc", "--service", "new_line"
    )
    assert 2 == run.status
    line = run.error_line
    assert line.startswith("error [usage]: ")
    assert all(word in line for word in ("--code", "--code -", "TELECARD_AUTH_CODE"))
    assert "TELECARD_AUTH_ID" in cli("issue", "--kind", "citizen", "--provider", "stc").error_line


@pytest.mark.parametrize(
    ("arguments", "options"),
    [
        (
            [
                "redeem",
                "--kind",
                "citizen",
                "--id",
                "-",
                "--provider",
                "stc",
                "--service",
                "new_line",
                "--code",
                "-",
            ],
            "--id, --code",
        ),
        (
            ["--storage", "-", "issue", "--kind", "citizen", "--id", "-", "--provider", "stc"],
            "--storage, --id",
        ),
        (["--storage", "-", "receipt", "verify", "-", "--provider", "stc"], "--storage, RECEIPT"),
        (
            [
                "issue",
                "--kind",
                "citizen",
                "--id",
                "-",
                "--provider",
                "stc",
                "--service",
                "number_transfer",
                "--recipient-kind",
                "resident",
                "--recipient-id",
                "-",
            ],
            "--id, --recipient-id",
        ),
    ],
)
def test_only_one_option_may_read_stdin(
    ready: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch, arguments: list[str], options: str
) -> None:
    """Two options asking for '-' are refused before anything is read from standard input."""
    stdin = feed(monkeypatch, f"{CITIZEN}\n")
    run = cli(*arguments)
    assert 2 == run.status
    assert run.error_line.startswith(f"error [invalid_argument]: The value of {options} cannot")
    assert "only one option can read standard input" in run.error_line
    assert 0 == stdin.tell()


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("", "standard input is empty"),
        ("\n", "standard input is empty"),
        ("  \t \r\n", "standard input is empty"),
        ("31415926\n27182818\n", "more than one line"),
        ("31415926\n\n", "more than one line"),
        ("31415926\r27182818", "more than one line"),
        ("3" * 5000, "too long"),
    ],
)
def test_stdin_must_hold_one_line_that_is_not_empty(
    ready: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch, given: str, reason: str
) -> None:
    """An empty, multi-line or huge standard input is a typed usage error that shows none of it."""
    feed(monkeypatch, given)
    for lang, label in (("en", "error"), ("ar", "خطأ")):
        run = redeem(cli, "-", "--lang", lang)
        assert 2 == run.status
        assert run.error_line.startswith(f"{label} [invalid_argument]: ")
        assert "--code" in run.error_line
        assert reason in run.error_line
        assert all(part not in run.err for part in given.split() if part)
        feed(monkeypatch, given)


@pytest.mark.parametrize("how", ["stdin", "environment"])
@pytest.mark.parametrize(
    "secret",
    [
        ("--code", "31415926", "wrong_code"),
        ("--code", "3141x926", "malformed_code"),
        ("--id", "1000000009", "invalid_identifier"),
        ("--id", "8765432109876", "invalid_identifier"),
    ],
)
def test_a_secret_from_stdin_or_the_environment_is_never_shown(
    ready: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    how: str,
    secret: tuple[str, str, str],
) -> None:
    """Refused as it should be, in either language, in JSON, even with --debug: never repeated."""
    option, value, code = secret
    given = {"--code": "31415927", "--id": CITIZEN}
    if how == "environment":
        monkeypatch.setenv(f"TELECARD_AUTH_{option[2:].upper()}", value)
        del given[option]
    else:
        given[option] = "-"
    words = [word for pair in given.items() for word in pair]
    main(["issue", "--kind", "citizen", "--id", CITIZEN, "--provider", "stc"])
    capsys.readouterr()
    for extra in ((), ("--json",), ("--lang", "ar"), ("--debug",)):
        feed(monkeypatch, value + "\n")
        main(
            [
                "redeem",
                "--kind",
                "citizen",
                "--provider",
                "stc",
                "--service",
                "new_line",
                *words,
                *extra,
            ]
        )
        shown = capsys.readouterr()
        assert f"[{code}]" in shown.err or f'"code": "{code}"' in shown.out, shown
        assert value not in shown.out + shown.err


def test_the_storage_url_can_come_from_stdin_and_its_password_is_never_shown(
    ready: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """--storage - reads the URL from standard input; a refused URL's password is not repeated."""
    database = tmp_path / "other.db"
    feed(monkeypatch, f"sqlite:///{database}\n")
    run = cli("--json", "--storage", "-", "migrate")
    assert 0 == run.status, run.out
    assert f"sqlite:///{database}" == run.json()["storage"]
    feed(monkeypatch, "nosuch://telecard:pa55-w0rd@db.example/telecard\n")
    refused = cli("--storage", "-", "purge")
    assert 6 == refused.status
    assert refused.error_line.startswith("error [invalid_storage_url]:")
    assert "pa55-w0rd" not in refused.err


def test_help_says_how_to_keep_secrets_off_the_command_line(cli: Cli) -> None:
    """--help lists the variables, and each secret option says that '-' reads standard input."""
    top = cli("--help").out
    assert all(name in top for name in SECRET_VARIABLES)
    redeem_help = " ".join(cli("redeem", "--help").out.split())
    assert "- reads it from standard input" in redeem_help
    assert all(name in redeem_help for name in SECRET_VARIABLES)
    issue_help = " ".join(cli("issue", "--help").out.split())
    assert "TELECARD_AUTH_ID" in issue_help
    storage_help = " ".join(cli("migrate", "--help").out.split())
    assert "- reads it from standard input" in storage_help


def test_python_m_takes_the_code_from_a_pipe_and_the_id_from_the_environment(
    tmp_path: Path, private: Path
) -> None:
    """End to end in a real process: neither the code nor the ID is ever an argument."""
    env = {
        ENV_HOME: str(private / "home"),
        ENV_KEYS: "",
        ENV_STORAGE: "",
        ENV_LANG: "",
        "TELECARD_AUTH_ID": CITIZEN,
        "TELECARD_AUTH_CODE": "",
        "TELECARD_AUTH_RECIPIENT_ID": "",
    }
    assert 0 == python_m("init", env=env, cwd=tmp_path).returncode
    issued = python_m(
        "--json", "issue", "--kind", "citizen", "--provider", "stc", env=env, cwd=tmp_path
    )
    assert 0 == issued.returncode, issued.stderr
    code = json.loads(issued.stdout)["code"]
    arguments = ["redeem", "--kind", "citizen", "--provider", "stc", "--service", "new_line"]
    used = python_m(*arguments, "--code", "-", env=env, cwd=tmp_path, stdin=f"{code}\n")
    assert 0 == used.returncode, used.stderr
    assert "receipt:" in used.stdout
    assert code not in used.stdout + used.stderr


# --- pseudonym key rotation: keys rotate --pseudonym, keys move --------------------------------

#: Customers filed before a rotation: a kind, an identity number, and a provider for each.
CUSTOMERS = (
    ("citizen", CITIZEN, "stc"),
    ("citizen", "1110704341", "mobily"),
    ("citizen", "1909266858", "zain"),
    ("resident", RESIDENT, "stc"),
)


def issue_to(cli: Cli, kind: str, identifier: str, provider: str) -> Any:
    """Issue a code to one customer through the command; its JSON answer."""
    run = cli("--json", "issue", "--kind", kind, "--id", identifier, "--provider", provider)
    assert 0 == run.status, run.out
    return run.json()


def redeem_for(cli: Cli, kind: str, identifier: str, provider: str, code: str) -> Run:
    """Redeem one customer's code for a new line through the command, in JSON."""
    return cli(
        "--json",
        "redeem",
        "--kind",
        kind,
        "--id",
        identifier,
        "--provider",
        provider,
        "--service",
        "new_line",
        "--code",
        code,
    )


def pseudonym_keys_in(path: Path) -> tuple[list[str], bool]:
    """The pseudonym key ids a key file holds, oldest first, and whether the newer waits."""
    document = json.loads(path.read_text())
    pseudonym = [key["kid"] for key in document["keys"] if key["role"] == "pseudonym"]
    return pseudonym, document["pseudonym_standby"]


def test_a_pseudonym_key_rotates_end_to_end(ready: Path, cli: Cli) -> None:
    """Standby, current, move, retire: customers filed under p1 keep redeeming throughout, the
    key file ends with p2 alone, and the next rotation starts with p3 in standby."""
    key_file = ready / KEY_FILE_NAME
    assert (["p1"], False) == pseudonym_keys_in(key_file)
    first = [issue_to(cli, *customer) for customer in CUSTOMERS]
    second = [issue_to(cli, *customer) for customer in CUSTOMERS]

    standby = cli("--json", "keys", "rotate", "--pseudonym")
    assert 0 == standby.status, standby.out
    assert {"pseudonym_key_ids": ["p1", "p2"], "standby": True} == standby.json()
    assert (["p1", "p2"], True) == pseudonym_keys_in(key_file)
    assert 0o600 == stat.S_IMODE(key_file.stat().st_mode)
    # A code issued while p2 waits is filed under p1 and still found.
    kind, identifier, provider = CUSTOMERS[0]
    assert 0 == redeem_for(cli, kind, identifier, provider, first[0]["code"]).status

    current = cli("--json", "keys", "rotate", "--pseudonym")
    assert 0 == current.status, current.out
    assert {"pseudonym_key_ids": ["p1", "p2"], "standby": False} == current.json()
    assert (["p1", "p2"], False) == pseudonym_keys_in(key_file)
    # Filed under p1, found with p2 current; redeeming moves the customer on.
    kind, identifier, provider = CUSTOMERS[1]
    assert 0 == redeem_for(cli, kind, identifier, provider, first[1]["code"]).status
    newcomer = issue_to(cli, "company", COMPANY, "salam")

    moved = cli("--json", "keys", "move", "--batch-size", "1")
    assert 0 == moved.status, moved.out
    counts = moved.json()
    # The three customers not written since p2 became current; the one redeemed since moved.
    assert (3, "p1") == (counts["moved"], counts["retired"])
    assert counts["scanned"] >= len(CUSTOMERS) + 1
    assert (["p2"], False) == pseudonym_keys_in(key_file)
    assert ["p2"] == [key.key_id for key in load_keys(key_file).keyring.pseudonym_keys]

    for (kind, identifier, provider), issued in zip(CUSTOMERS, second, strict=True):
        run = redeem_for(cli, kind, identifier, provider, issued["code"])
        assert 0 == run.status, run.out
        assert issued["code_id"] == run.json()["code_id"]
    for kind, identifier, provider, issued in (
        (*CUSTOMERS[2], first[2]),
        (*CUSTOMERS[3], first[3]),
        ("company", COMPANY, "salam", newcomer),
    ):
        assert 0 == redeem_for(cli, kind, identifier, provider, issued["code"]).status

    again = cli("--json", "keys", "rotate", "--pseudonym")
    assert 0 == again.status, again.out
    assert {"pseudonym_key_ids": ["p2", "p3"], "standby": True} == again.json()
    assert (["p2", "p3"], True) == pseudonym_keys_in(key_file)


def test_pseudonym_rotation_steps_tell_people_what_to_do_next(ready: Path, cli: Cli) -> None:
    """Each step says, in English or Arabic, which key it added or made current, and what to
    run next; the move says how many customers moved and which key retired."""
    standby = cli("keys", "rotate", "--pseudonym")
    assert 0 == standby.status
    assert "Added pseudonym key p2 in standby" in standby.out
    assert "'keys rotate --pseudonym' again" in standby.out
    current = cli("--lang", "ar", "keys", "rotate", "--pseudonym")
    assert 0 == current.status
    assert "أصبح مفتاح الأسماء المستعارة p2 معتمدًا" in current.out
    assert "'keys move'" in current.out
    moved = cli("keys", "move")
    assert 0 == moved.status
    assert "Moved 0 customer(s) to the new pseudonym key" in moved.out
    assert "retired p1" in moved.out


def test_keys_move_with_one_pseudonym_key_is_refused(ready: Path, cli: Cli) -> None:
    """With a single pseudonym key no rotation is under way: no_rotation, exit 2, in English
    or Arabic, naming the command that starts one; the key file is unchanged."""
    before = (ready / KEY_FILE_NAME).read_bytes()
    run = cli("keys", "move")
    assert 2 == run.status
    assert run.error_line.startswith("error [no_rotation]: No pseudonym key rotation is under way")
    assert "'keys rotate --pseudonym'" in run.error_line
    arabic = cli("--lang", "ar", "keys", "move")
    assert 2 == arabic.status
    assert "لا يجري تدوير لمفتاح الأسماء المستعارة" in arabic.err
    answer = cli("--json", "keys", "move")
    assert (2, "no_rotation") == (answer.status, answer.json()["error"]["code"])
    assert before == (ready / KEY_FILE_NAME).read_bytes()


def test_no_rotation_is_invalid_input() -> None:
    """NoRotation is an InvalidInput: it exits with that family's status, 2, like a usage error."""
    assert isinstance(NoRotation(), InvalidInput)
    assert "no_rotation" == NoRotation().code
    assert exit_status(UsageError(detail="x", prog="p")) == exit_status(NoRotation()) == 2


@pytest.mark.parametrize("other", ["--hmac", "--signing"])
def test_a_pseudonym_step_with_another_key_is_a_usage_error(
    ready: Path, cli: Cli, other: str
) -> None:
    """``keys rotate --pseudonym`` with --hmac or --signing is a usage error (exit 2) that
    changes nothing, in either order of the options."""
    key_file = ready / KEY_FILE_NAME
    before = key_file.read_bytes()
    for arguments in (("--pseudonym", other), (other, "--pseudonym")):
        run = cli("keys", "rotate", *arguments)
        assert 2 == run.status
        assert run.error_line.startswith("error [usage]: --pseudonym is a step of its own")
        assert "" == run.out
        answer = cli("--json", "keys", "rotate", *arguments)
        assert (2, "usage") == (answer.status, answer.json()["error"]["code"])
    assert before == key_file.read_bytes()
    assert (["p1"], False) == pseudonym_keys_in(key_file)


def test_keys_move_while_the_new_key_waits_in_standby_is_refused(ready: Path, cli: Cli) -> None:
    """A key in standby files nobody yet: moving to it is refused and retires nothing."""
    issue(cli)
    assert 0 == cli("keys", "rotate", "--pseudonym").status
    before = (ready / KEY_FILE_NAME).read_bytes()
    run = cli("keys", "move")
    assert 6 == run.status
    assert run.error_line.startswith("error [keyring_error]:")
    assert "move only once the newer pseudonym key is current on every node" in run.error_line
    assert before == (ready / KEY_FILE_NAME).read_bytes()
    assert (["p1", "p2"], True) == pseudonym_keys_in(ready / KEY_FILE_NAME)


def test_a_new_rotation_before_the_move_is_refused(ready: Path, cli: Cli) -> None:
    """While p2 is current and customers still wait under p1, ``keys rotate --pseudonym`` is
    refused (exit 2, naming ``keys move``) and the key file is unchanged."""
    issue(cli)
    assert 0 == cli("keys", "rotate", "--pseudonym").status
    assert 0 == cli("keys", "rotate", "--pseudonym").status
    before = (ready / KEY_FILE_NAME).read_bytes()
    run = cli("keys", "rotate", "--pseudonym")
    assert 2 == run.status
    assert run.error_line.startswith("error [invalid_argument]: The value of --pseudonym")
    assert "run 'keys move' next" in run.error_line
    assert before == (ready / KEY_FILE_NAME).read_bytes()


def test_redeem_names_the_customer_by_a_pseudonym_for_each_provider(ready: Path, cli: Cli) -> None:
    """Redeem's JSON carries ``customer_ref`` (never ``subject_ref`` nor the ID): the same at one
    provider, different at another for the same customer."""
    refs: dict[str, set[str]] = {}
    for provider in ("stc", "stc", "mobily"):
        used = redeem(cli, issue(cli, provider=provider)["code"], "--json", provider=provider)
        assert 0 == used.status, used.out
        answer = used.json()
        assert "subject_ref" not in answer
        assert CITIZEN not in used.out
        assert re.fullmatch(r"[0-9a-f]{32}", answer["customer_ref"])
        refs.setdefault(provider, set()).add(answer["customer_ref"])
    assert 1 == len(refs["stc"])
    assert 1 == len(refs["mobily"])
    assert refs["stc"] != refs["mobily"]


def test_redeem_passes_its_reference_to_the_audit_events(
    ready: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``redeem --reference`` names the agent in the library's audit events, in a refusal and in
    the redemption; a redemption without it records None."""
    first, second = issue(cli), issue(cli)
    sink = CollectingSink()
    monkeypatch.setattr(
        "telecard_auth.cli._codes.CodeIssuer", functools.partial(CodeIssuer, events=sink)
    )
    wrong = next(
        code
        for code in ("00000000", "11111111", "22222222")
        if code not in (first["code"], second["code"])
    )
    assert exit_status(WrongCode()) == redeem(cli, wrong, "--reference", "agent-17").status
    used = redeem(cli, first["code"], "--json", "--reference", "branch/riyadh#3")
    assert 0 == used.status, used.out
    assert first["code_id"] == used.json()["code_id"]
    assert 0 == redeem(cli, second["code"]).status
    [refused] = sink.of_type(events.RedemptionRefusal)
    assert ("wrong_code", "agent-17") == (refused.reason, refused.reference)
    references = [event.reference for event in sink.of_type(events.CodeRedemption)]
    assert ["branch/riyadh#3", None] == references


@pytest.mark.parametrize("reference", ["", "x" * 65, "agent 17", "agent\t17", "وكيل", "agent-١٧"])
def test_redeem_refuses_a_reference_that_is_not_printable_ascii(
    ready: Path, cli: Cli, reference: str
) -> None:
    """A reference that is not 1-64 printable ASCII characters is invalid_reference (exit 2),
    in plain text and JSON; the code is neither used nor charged, and redeems afterwards."""
    issued = issue(cli)
    run = redeem(cli, issued["code"], "--reference", reference)
    assert 2 == run.status
    assert run.error_line.startswith("error [invalid_reference]: The reference must be 1 to 64")
    answer = redeem(cli, issued["code"], "--json", "--reference", reference)
    assert (2, "invalid_reference") == (answer.status, answer.json()["error"]["code"])
    used = redeem(cli, issued["code"], "--json", "--reference", "x" * 64)
    assert 0 == used.status, used.out
    assert issued["code_id"] == used.json()["code_id"]


# --- one field for a script (--print) ----------------------------------------------------------

#: The shortest command line of each command, keyed as docs/cli.md's table of JSON fields names it.
SHORTEST = {
    "init": ["init"],
    "migrate": ["migrate"],
    "issue": ["issue", "--kind", "citizen", "--id", CITIZEN, "--provider", "stc"],
    "redeem": [
        *("redeem", "--kind", "citizen", "--id", CITIZEN, "--provider", "stc"),
        *("--service", "new_line", "--code", "00000000"),
    ],
    "status": ["status", "--kind", "citizen", "--id", CITIZEN, "--code-id", "q3Vx0bLk9TzA2mNc"],
    "revoke": ["revoke", "--kind", "citizen", "--id", CITIZEN, "--code-id", "q3Vx0bLk9TzA2mNc"],
    "purge": ["purge"],
    "keys rotate": ["keys", "rotate"],
    "keys rotate --pseudonym": ["keys", "rotate", "--pseudonym"],
    "keys move": ["keys", "move"],
    "keys public": ["keys", "public"],
    "receipt verify": ["receipt", "verify", "eyJ.x.y", "--provider", "stc"],
    "demo": ["demo"],
}
README = DOCS.parents[1] / "README.md"


def fields_named(cli: Cli, *command: str) -> list[str]:
    """The fields of ``command``'s answer, as the refusal of an unknown field lists them."""
    run = cli(*command, "--print", "?")
    assert 2 == run.status, run.out
    found = re.fullmatch(r"error \[unknown_field\]: .* its fields are: (.*)\.", run.error_line)
    assert found is not None, run.error_line
    return found.group(1).split(", ")


def test_print_gives_one_field_alone_for_a_shell_to_capture(ready: Path, cli: Cli) -> None:
    """--print code prints the code alone, and it redeems; --print receipt prints the receipt
    alone, and it verifies: one line each, nothing on stderr."""
    printed = cli(*SHORTEST["issue"], "--print", "code")
    assert (0, "") == (printed.status, printed.err)
    [code] = printed.out.splitlines()
    assert re.fullmatch(r"[0-9]{8}", code)
    used = redeem(cli, code, "--print", "receipt")
    assert (0, "") == (used.status, used.err)
    [receipt] = used.out.splitlines()
    assert receipt.startswith("eyJ")
    verified = cli("receipt", "verify", receipt, "--provider", "stc", "--print", "verified")
    assert (0, "true\n") == (verified.status, verified.out)


@pytest.mark.parametrize(
    ("field", "printed"),
    [
        ("state", "active\n"),
        ("failed_attempts", "0\n"),
        ("service", "\n"),
        ("finished_at", "\n"),
    ],
)
def test_print_shows_a_string_as_it_is_null_as_nothing_and_the_rest_as_json(
    ready: Path, cli: Cli, field: str, printed: str
) -> None:
    """A string prints without quotes, a number as JSON, null as an empty line."""
    issued = issue(cli)
    run = cli(
        "status",
        "--kind",
        "citizen",
        "--id",
        CITIZEN,
        "--code-id",
        issued["code_id"],
        "--print",
        field,
    )
    assert (0, printed) == (run.status, run.out)


def test_print_shows_a_list_as_one_line_of_json_and_with_json_every_field_as_json(
    ready: Path, cli: Cli
) -> None:
    """A list prints as one line of JSON; with --json, a string prints as a JSON string."""
    jwk = load_keys(ready / KEY_FILE_NAME).signer.current.public_key.to_jwk()
    listed = cli("keys", "public", "--print", "keys")
    assert (0, json.dumps([jwk], ensure_ascii=False) + "\n") == (listed.status, listed.out)
    quoted = cli("--json", "keys", "public", "--print", "current")
    assert (0, '"r1"\n') == (quoted.status, quoted.out)


def test_print_refuses_an_unknown_field_before_the_command_runs(ready: Path, cli: Cli) -> None:
    """A field the answer does not have is unknown_field (exit 2), naming the fields, in plain
    text, JSON and Arabic; the command does not run, so the code is still good."""
    issued = issue(cli)
    run = redeem(cli, issued["code"], "--print", "reciept")
    assert (2, "") == (run.status, run.out)
    assert (
        "error [unknown_field]: telecard-auth redeem answers with no field 'reciept'; its fields"
        " are: code_id, customer_ref, provider, service, issued_at, redeemed_at, receipt,"
        " receipt_key_id."
    ) == run.error_line
    answer = redeem(cli, issued["code"], "--json", "--print", "reciept")
    assert (2, "unknown_field") == (answer.status, answer.json()["error"]["code"])
    arabic = redeem(cli, issued["code"], "--lang", "ar", "--print", "reciept")
    assert arabic.error_line.startswith("خطأ [unknown_field]: لا يتضمن رد telecard-auth redeem")
    assert 0 == redeem(cli, issued["code"]).status


def test_print_on_a_failure_prints_the_error_alone(ready: Path, cli: Cli) -> None:
    """A refusal with --print prints nothing on stdout: a captured variable stays empty."""
    run = redeem(cli, "00000000", "--print", "receipt")
    assert (4, "") == (run.status, run.out)
    assert run.error_line.startswith("error [wrong_code]: ")


def test_keys_rotate_pseudonym_names_the_fields_of_its_own_answer(ready: Path, cli: Cli) -> None:
    """The pseudonym step answers with other fields than keys rotate; each is refused the
    other's, before anything is rotated."""
    refused = cli("keys", "rotate", "--print", "standby")
    assert 2 == refused.status
    assert "telecard-auth keys rotate answers with no field 'standby'" in refused.error_line
    wrong = cli("keys", "rotate", "--pseudonym", "--print", "hmac_key_id")
    assert "keys rotate --pseudonym answers with no field 'hmac_key_id'" in wrong.error_line
    keys = load_keys(ready / KEY_FILE_NAME)
    assert (["k1"], ["p1"]) == (
        [key.key_id for key in keys.keyring.keys],
        [key.key_id for key in keys.keyring.pseudonym_keys],
    )
    stepped = cli("keys", "rotate", "--pseudonym", "--print", "standby")
    assert (0, "true\n") == (stepped.status, stepped.out)


def _json_fields_in_the_docs() -> list[tuple[str, list[str]]]:
    rows: list[tuple[str, list[str]]] = []
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        found = re.fullmatch(r"\| (`[a-z -]+`(?:, `[a-z -]+`)*) \| (`.*) \|", line)
        if found is not None and "any failure" not in line:
            # A remark in brackets is no field: "`signing_key_id` (`null` if not rotated)".
            fields = re.findall(r"`([a-z_]+)`", re.sub(r"\([^)]*\)", "", found.group(2)))
            rows += [(name, fields) for name in re.findall(r"`([a-z -]+)`", found.group(1))]
    return rows


@pytest.mark.parametrize(("command", "documented"), _json_fields_in_the_docs())
def test_the_docs_list_the_fields_that_print_may_name(
    home: Path, cli: Cli, command: str, documented: list[str]
) -> None:
    """docs/cli.md's table of JSON fields is what --print accepts, command by command."""
    assert documented == fields_named(cli, *SHORTEST[command])


def test_every_answer_has_the_fields_that_print_may_name(ready: Path, cli: Cli) -> None:
    """Each command's --json answer has exactly the fields --print may name, in that order."""
    first, second = issue(cli), issue(cli)
    redeemed = redeem(cli, first["code"], "--json").json()
    code_id = ["--code-id", second["code_id"]]
    runs = {
        "issue": SHORTEST["issue"],
        "redeem": None,
        "status": [*SHORTEST["status"][:-2], *code_id],
        "revoke": [*SHORTEST["revoke"][:-2], *code_id],
        "receipt verify": ["receipt", "verify", redeemed["receipt"], "--provider", "stc"],
        "keys public": SHORTEST["keys public"],
        "keys rotate": SHORTEST["keys rotate"],
        "keys rotate --pseudonym": SHORTEST["keys rotate --pseudonym"],
        "purge": SHORTEST["purge"],
        "migrate": SHORTEST["migrate"],
        "demo": SHORTEST["demo"],
    }
    answers = {"redeem": redeemed}
    for name, command in runs.items():
        if command is not None:
            run = cli("--json", *command)
            assert 0 == run.status, (name, run.out)
            answers[name] = run.json()
    assert 0 == cli("keys", "rotate", "--pseudonym").status
    answers["keys move"] = cli("--json", "keys", "move").json()
    answers["init"] = cli("--json", "init", "--force").json()
    assert SHORTEST.keys() == answers.keys()
    for name, answer in answers.items():
        assert (name, fields_named(cli, *SHORTEST[name])) == (name, list(answer))


# The telecard-auth command inside $(...), after a pipe if there is one.
_CAPTURED = re.compile(r"\$\((?:[^()|]*\| )?(telecard-auth [^()]*)\)")


def _captured_command_lines() -> list[str]:
    lines: list[str] = []
    for path in (DOCS, README):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("$ "):
                lines += [found.group(1) for found in _CAPTURED.finditer(line)]
    return lines


def test_the_docs_capture_fields_in_a_shell() -> None:
    """docs/cli.md and the README show the code and the receipt captured with --print."""
    captured = _captured_command_lines()
    assert any(line.endswith("--print code") for line in captured)
    assert any(line.endswith("--print receipt") for line in captured)


@pytest.mark.parametrize("line", _captured_command_lines())
def test_every_captured_command_line_parses_with_its_field(line: str) -> None:
    """Each command line captured in $(...) in docs/cli.md and the README parses, and its
    --print names a field of the command's answer."""
    words = shlex.split(line)
    assert "telecard-auth" == words[0]
    assert callable(parse(words[1:]).handler)


# --- the command's modules ---------------------------------------------------------------------

CLI_PACKAGE = Path(telecard_auth.cli.__file__).parent
CLI_MODULES = sorted(path.stem for path in CLI_PACKAGE.glob("_*.py") if path.stem != "__init__")
#: Today's public names of telecard_auth.cli, which must stay.
PUBLIC = [
    "DATABASE_NAME",
    "DEFAULT_HOME",
    "DEMO_DATABASE",
    "ENV_CODE",
    "ENV_HOME",
    "ENV_ID",
    "ENV_KEYS",
    "ENV_LANG",
    "ENV_RECIPIENT_ID",
    "ENV_STORAGE",
    "EXAMPLES",
    "EXIT_STATUSES",
    "KEY_FILE_NAME",
    "PROG",
    "DatabaseMissing",
    "InvalidArgument",
    "KeyFileExists",
    "NoRotation",
    "UnknownCommand",
    "UsageError",
    "build_parser",
    "default_home",
    "exit_status",
    "main",
]
# Import one module of the command in a fresh interpreter, with the package's __init__ left out,
# so that it gets only what the module itself imports.
_ALONE = """
import importlib, importlib.util, sys
spec = importlib.util.find_spec("telecard_auth.cli")
sys.modules["telecard_auth.cli"] = importlib.util.module_from_spec(spec)
importlib.import_module("telecard_auth.cli.{module}")
"""


@pytest.mark.parametrize("module", CLI_MODULES)
def test_each_module_of_the_command_imports_alone(module: str) -> None:
    """Each module of the command imports on its own in a fresh interpreter: no module needs the
    package's __init__, nor one that imports it back."""
    run = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-c", _ALONE.format(module=module)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 0 == run.returncode, run.stderr


def test_the_command_keeps_its_public_names_where_they_were() -> None:
    """Every public name stays in telecard_auth.cli, and its classes and functions say so."""
    assert set(PUBLIC) <= set(telecard_auth.cli.__all__)
    for name in telecard_auth.cli.__all__:
        public = getattr(telecard_auth.cli, name)
        if isinstance(public, type) or callable(public):
            assert (name, "telecard_auth.cli") == (name, public.__module__)


@pytest.mark.parametrize("module", ["__init__", *CLI_MODULES])
def test_the_command_reads_in_short_steps(module: str) -> None:
    """Each module of the command reads in one sitting (under 500 lines), each function in a
    screen or so (60 lines at most)."""
    text = (CLI_PACKAGE / f"{module}.py").read_text(encoding="utf-8")
    assert len(text.splitlines()) < 500
    long = [
        (node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > 60
    ]
    assert [] == long
