"""The command's help beyond its options: an example per command, the exit statuses, the files.

Tests check that every example parses.
"""

from __future__ import annotations

from telecard_auth.cli._settings import (
    DATABASE_NAME,
    DEFAULT_HOME,
    ENV_CODE,
    ENV_HOME,
    ENV_ID,
    ENV_KEYS,
    ENV_LANG,
    ENV_RECIPIENT_ID,
    ENV_STORAGE,
    KEY_FILE_NAME,
    PROG,
)

__all__ = ["EXAMPLES", "EXIT_TABLE", "FILES", "epilog"]

#: Examples per command, shown in its --help; tests check that each one parses.
EXAMPLES: dict[str, tuple[tuple[str, str], ...]] = {
    "init": (
        ("make the key file and the SQLite database in ./.telecard-auth", f"{PROG} init"),
        (
            "the same, with codes in PostgreSQL",
            f"{PROG} --storage postgresql://telecard@db.example/telecard init",
        ),
    ),
    "migrate": (
        (
            "create or upgrade the schema of another storage",
            f"{PROG} --storage postgresql://telecard@db.example/telecard migrate",
        ),
    ),
    "issue": (
        (
            "a code for a citizen, for STC",
            f"{PROG} issue --kind citizen --id 1000000008 --provider stc",
        ),
        (
            "the identity number may be typed in Arabic-Indic digits",
            f"{PROG} issue --kind citizen --id ١٠٠٠٠٠٠٠٠٨ --provider mobily --service new_line",
        ),
        (
            "the code alone, for a script: CODE=$(...)",
            f"{PROG} issue --kind citizen --id 1000000008 --provider stc --print code",
        ),
    ),
    "redeem": (
        (
            "the STC agent uses the code for a new line",
            f"{PROG} redeem --kind citizen --id 1000000008 --provider stc"
            " --service new_line --code '4821 0937' --request-id counter-7-visit-1",
        ),
        (
            "the code from standard input, and the receipt alone: RECEIPT=$(printf ... | ...)",
            f"{PROG} redeem --kind citizen --id 1000000008 --provider stc --service new_line"
            " --code - --print receipt",
        ),
    ),
    "status": (
        (
            "the state of one code",
            f"{PROG} status --kind citizen --id 1000000008 --code-id q3Vx0bLk9TzA2mNc",
        ),
    ),
    "revoke": (
        (
            "the customer cancels a code",
            f"{PROG} revoke --kind citizen --id 1000000008 --code-id q3Vx0bLk9TzA2mNc",
        ),
    ),
    "purge": (
        ("delete every finished record, in batches of 1000", f"{PROG} purge"),
        ("one batch of 100 only (for a cron job)", f"{PROG} purge --batch-size 100 --once"),
    ),
    "keys rotate": (
        ("a new HMAC key and a new receipt signing key", f"{PROG} keys rotate"),
        ("a new receipt signing key only", f"{PROG} keys rotate --signing"),
        ("the next step of a pseudonym key rotation", f"{PROG} keys rotate --pseudonym"),
    ),
    "keys public": (
        ("the receipt signing keys' ids, the current one marked", f"{PROG} keys public"),
        (
            "the public JWK Set for operators (save it: ... > jwks.json)",
            f"{PROG} keys public --jwks",
        ),
    ),
    "keys move": (("move every customer to the new pseudonym key", f"{PROG} keys move"),),
    "receipt verify": (
        (
            "STC checks a receipt with the issuer's public JWK Set",
            f"{PROG} receipt verify eyJhbGciOiJFZERTQSIs... --provider stc --jwks jwks.json",
        ),
        (
            "the issuing side checks one with the key file's keys, for one service",
            f"{PROG} receipt verify eyJhbGciOiJFZERTQSIs... --provider stc --service new_line",
        ),
    ),
    "demo": (
        ("walk through the rules, end to end, on SQLite", f"{PROG} demo"),
        ("the same walk on Redis", f"{PROG} demo --storage redis://localhost:6379/0"),
    ),
}

EXIT_TABLE = """\
exit status:
  0  success
  1  unexpected failure (--debug shows where)
  2  usage or invalid input (unknown command or option, bad ID, malformed code or receipt)
  3  not permitted (not eligible, service not allowed, live-code limit)
  4  redemption refused (wrong, expired, used, revoked, locked, superseded code, ...)
  5  unknown code id
  6  configuration (no or unreadable key file, no database, bad storage URL, missing extra)
  7  storage failure
  8  receipt not verified (altered, signed with another key, or made for another use)"""

FILES = f"""\
files and environment:
  {ENV_HOME:<26}  home directory (default: ./{DEFAULT_HOME})
  {ENV_KEYS:<26}  key file (default: $TELECARD_AUTH_HOME/{KEY_FILE_NAME});
  {"":<26}  --keys overrides
  {ENV_STORAGE:<26}  storage URL (default: $TELECARD_AUTH_HOME/{DATABASE_NAME});
  {"":<26}  --storage overrides
  {ENV_LANG:<26}  en or ar: the default of --lang
  {ENV_ID:<26}  the customer's ID, when --id is not given
  {ENV_CODE:<26}  the code, when --code is not given
  {ENV_RECIPIENT_ID:<26}  the recipient's ID, when --recipient-kind is given and
  {"":<26}  --recipient-id is not

keeping secrets off the command line:
  Every local user can read a command line (ps) and the shell keeps it in its history. Give a
  code, an ID or a storage URL with a password in the variables above, or as - to read it from
  standard input (one option at a time), e.g.
    read -rs CODE && printf '%s\\n' "$CODE" | {PROG} redeem ... --code -"""


def epilog(name: str) -> str:
    lines = ["examples:" if len(EXAMPLES[name]) > 1 else "example:"]
    for comment, command in EXAMPLES[name]:
        lines += [f"  # {comment}", f"  $ {command}"]
    return "\n".join(lines)
