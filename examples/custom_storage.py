"""A storage backend written from scratch: one JSON file per customer, in one directory.

The ``Storage`` protocol asks for three operations and knows no rule:

- ``load(subject_ref)``: everything stored for one customer, with its compare-and-set token
  (version 0 when nothing is);
- ``commit(change)``: store the customer's complete new state only if the customer still has the
  change's compare-and-set token, and say whether it did. The token is the pair
  (``incarnation``, ``version``): a commit at version 0 creates the customer, who must have
  nothing stored, and stores the change's ``incarnation``; any other commit needs both the stored
  version and the stored incarnation to equal the change's. The incarnation is what keeps a
  stalled request from writing over a customer that was purged and created anew since it read;
- ``purge(now, limit)``: delete up to ``limit`` customers whose ``keep_until`` has come.

A commit also carries the customer's sealed identity and a ``moved`` mark (set while the customer
moves to a new pseudonym key); they are stored as they come, and ``load`` gives them back.

Two capabilities are optional, and this backend has both: ``purge_snapshots`` (a purge that
returns what it deleted, so that an issuer can report codes that expired unused) and
``scan_subjects`` (every stored customer, a page at a time, so that ``move_subjects`` can move
them all to a new pseudonym key; without it, customers move only when they are next written).

``JsonFileStorage`` does all of that with plain files: each commit writes a new file and renames
it over the old one, so a reader sees the old state or the new one, never half of each. Changes
take turns under a lock file (``fcntl.flock``, POSIX only), which excludes other threads and
other processes on the same machine alike. It is a teaching example, not a production backend:
every commit fsyncs a file, and ``purge`` reads the whole directory.

``examples/test_custom_storage.py`` proves it with ``telecard_auth.testing.StorageContract``.
Run this file to see it serve an issuer::

    python examples/custom_storage.py
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from telecard_auth import (
    CodeIssuer,
    CodeRecord,
    CodeState,
    Commit,
    FailureLog,
    Keyring,
    StorageError,
    Subject,
    SubjectSnapshot,
)

__all__ = ["JsonFileStorage"]


class JsonFileStorage:
    """``Storage``, ``PurgeReporting`` and ``SubjectScanning`` over a directory of JSON files.

    One file per customer, named by a hash of its ``subject_ref``.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_file = self.directory / "lock"

    def load(self, subject_ref: str) -> SubjectSnapshot:
        """Everything stored for ``subject_ref``; see ``Storage.load``."""
        # No lock: a commit replaces the file in one rename, so this reads one version whole.
        with _as_storage_error():
            return self._read(self._path(subject_ref), subject_ref)

    def commit(self, change: Commit) -> bool:
        """Compare-and-set on the customer's (incarnation, version); see ``Storage.commit``."""
        path = self._path(change.subject_ref)
        with _as_storage_error(), self._locked():
            current = self._read(path, change.subject_ref)
            if current.version != change.expected_version:
                return False
            # Version 0 means nothing is stored: the change creates the customer, with its own
            # new incarnation. Otherwise the stored incarnation must be the change's too.
            if current.version and current.incarnation != change.incarnation:
                return False
            stored = SubjectSnapshot(
                subject_ref=change.subject_ref,
                version=change.expected_version + 1,
                incarnation=change.incarnation,
                codes=change.codes,
                failure_logs=change.failure_logs,
                keep_until=change.keep_until,
                identity=change.identity,
                moved=change.moved,
            )
            self._write(path, _to_json(stored))
            return True

    def purge(self, now: datetime, limit: int) -> int:
        """Delete up to ``limit`` customers kept until ``now`` or earlier; see ``Storage.purge``."""
        return len(self.purge_snapshots(now, limit))

    def purge_snapshots(self, now: datetime, limit: int) -> list[SubjectSnapshot]:
        """``purge``, returning what it deleted; see ``PurgeReporting.purge_snapshots``.

        This optional capability lets an issuer with event sinks report codes that expired unused.
        """
        deleted: list[SubjectSnapshot] = []
        with _as_storage_error(), self._locked():
            for path in sorted(self.directory.glob("*.json")):
                if len(deleted) == limit:
                    break
                snapshot = _from_json(json.loads(path.read_bytes()))
                if snapshot.keep_until is not None and snapshot.keep_until <= now:
                    path.unlink()
                    deleted.append(snapshot)
            if deleted:
                _sync_directory(self.directory)
        return deleted

    def scan_subjects(
        self, after: str | None, limit: int
    ) -> tuple[list[SubjectSnapshot], str | None]:
        """A page of stored customers, in file-name order; see ``SubjectScanning``.

        The cursor is the last file name of the page: file names never change, so a customer
        stored for the whole walk is listed exactly once.
        """
        with _as_storage_error():
            names = sorted(
                path.name
                for path in self.directory.glob("*.json")
                if after is None or path.name > after
            )
            page: list[SubjectSnapshot] = []
            for name in names[:limit]:
                try:
                    page.append(_from_json(json.loads((self.directory / name).read_bytes())))
                except FileNotFoundError:
                    continue  # purged since the directory was listed
        return page, (names[limit - 1] if len(names) > limit else None)

    def _path(self, subject_ref: str) -> Path:
        # Hashing the pseudonym makes a safe file name of any text: no separators, no "..".
        return self.directory / f"{hashlib.sha256(subject_ref.encode()).hexdigest()}.json"

    @staticmethod
    def _read(path: Path, subject_ref: str) -> SubjectSnapshot:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return SubjectSnapshot(subject_ref=subject_ref)
        return _from_json(json.loads(raw))

    def _write(self, path: Path, document: dict[str, Any]) -> None:
        # Write aside, make it durable, then rename over the old file: the rename is atomic.
        descriptor, temporary = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(json.dumps(document, separators=(",", ":")).encode())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        # The rename itself reaches the disk only when the directory is synced.
        _sync_directory(self.directory)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # Every call opens the lock file anew: flock then excludes other threads of this process
        # as well as other processes. Closing the file releases the lock.
        with self._lock_file.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def __repr__(self) -> str:
        return f"JsonFileStorage({str(self.directory)!r})"


@contextmanager
def _as_storage_error() -> Iterator[None]:
    """Turn file system and decoding errors into ``StorageError``, as ``Storage`` asks."""
    try:
        yield
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise StorageError(reason=type(error).__name__) from error


def _sync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# --- the file format: JSON has no bytes, datetimes or enums, so each gets a text form -----------


def _time(moment: datetime) -> str:
    return moment.isoformat()  # aware UTC, with microseconds: both must come back exactly


def _time_or_none(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _to_json(snapshot: SubjectSnapshot) -> dict[str, Any]:
    def field(_instance: object, _attribute: object, value: Any) -> Any:
        if isinstance(value, datetime):
            return _time(value)
        if isinstance(value, bytes):
            return value.hex()
        if isinstance(value, CodeState):
            return value.value
        return value

    return attrs.asdict(snapshot, value_serializer=field)


def _from_json(document: dict[str, Any]) -> SubjectSnapshot:
    codes = tuple(
        CodeRecord(
            **{
                **record,
                "digest": bytes.fromhex(record["digest"]),
                "state": CodeState(record["state"]),
                "issued_at": datetime.fromisoformat(record["issued_at"]),
                "expires_at": datetime.fromisoformat(record["expires_at"]),
                "finished_at": _time_or_none(record["finished_at"]),
            }
        )
        for record in document["codes"]
    )
    failure_logs = tuple(
        FailureLog(
            provider_id=log["provider_id"],
            failures=tuple(datetime.fromisoformat(moment) for moment in log["failures"]),
            recoveries=tuple(datetime.fromisoformat(moment) for moment in log["recoveries"]),
        )
        for log in document["failure_logs"]
    )
    return SubjectSnapshot(
        subject_ref=document["subject_ref"],
        version=document["version"],
        incarnation=document["incarnation"],
        codes=codes,
        failure_logs=failure_logs,
        keep_until=_time_or_none(document["keep_until"]),
        identity=document["identity"],
        moved=document["moved"],
    )


def main() -> int:
    """Issue and redeem one code over ``JsonFileStorage``, then show what the files hold."""
    with tempfile.TemporaryDirectory() as folder:
        storage = JsonFileStorage(folder)
        issuer = CodeIssuer(storage, keyring=Keyring.generate())
        customer = Subject.resident("2129040479")

        issued = issuer.issue(customer, "mobily")
        redemption = issuer.redeem(customer, "mobily", issued.code, "lost_sim_replacement")
        print(f"redeemed code {redemption.code_id} at {redemption.provider.name_en}")

        (stored,) = Path(folder).glob("*.json")
        text = stored.read_text()
        clear = issued.code in text or customer.identifier in text
        print(f"stored file {stored.name[:12]}…: {len(text)} bytes, code or ID in clear: {clear}")
    return 1 if clear else 0


if __name__ == "__main__":
    sys.exit(main())
