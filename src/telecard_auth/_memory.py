"""In-process storage: a dict behind one lock. For tests, demos and single-process services."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from telecard_auth._storage import CodeRecord, Commit, FailureLog, SubjectSnapshot

__all__ = ["MemoryStorage"]


class _Entry:
    __slots__ = ("codes", "logs", "version")

    def __init__(self) -> None:
        self.version = 0
        self.codes: dict[str, CodeRecord] = {}
        self.logs: dict[str, FailureLog] = {}


class MemoryStorage:
    """Thread-safe in-memory storage. Everything is lost when the process ends.

    >>> from telecard_auth import Commit
    >>> storage = MemoryStorage()
    >>> storage.commit(Commit(subject_ref="s", expected_version=0))
    True
    >>> storage.commit(Commit(subject_ref="s", expected_version=0))
    False
    >>> storage.load("s").version
    1
    """

    def __init__(self) -> None:
        self._subjects: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def load(self, subject_ref: str) -> SubjectSnapshot:
        """Everything stored for ``subject_ref``; see ``Storage.load``."""
        with self._lock:
            entry = self._subjects.get(subject_ref)
            if entry is None:
                return SubjectSnapshot(subject_ref=subject_ref)
            return SubjectSnapshot(
                subject_ref=subject_ref,
                version=entry.version,
                codes=tuple(entry.codes.values()),
                failure_logs=tuple(entry.logs.values()),
            )

    def commit(self, change: Commit) -> bool:
        """Compare-and-set on the subject's version; see ``Storage.commit``."""
        with self._lock:
            entry = self._subjects.get(change.subject_ref)
            if (entry.version if entry is not None else 0) != change.expected_version:
                return False
            if entry is None:
                entry = self._subjects[change.subject_ref] = _Entry()
            for record in change.codes:
                entry.codes[record.code_id] = record
            for log in change.failure_logs:
                entry.logs[log.provider_id] = log
            entry.version += 1
            return True

    def snapshots(self) -> Iterator[SubjectSnapshot]:
        """Every subject's snapshot: the whole content of the storage, for audits and tests."""
        with self._lock:
            refs = list(self._subjects)
        for ref in refs:
            yield self.load(ref)

    def __repr__(self) -> str:
        return f"MemoryStorage(subjects={len(self._subjects)})"
