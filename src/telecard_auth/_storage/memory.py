"""In-process storage: a dict behind one lock. For tests, demos and single-process services."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from itertools import islice

from telecard_auth._storage.protocol import Commit, SubjectSnapshot

__all__ = ["AsyncMemoryStorage", "MemoryStorage"]


class MemoryStorage:
    """Thread-safe in-memory storage. Everything is lost when the process ends."""

    def __init__(self) -> None:
        # Snapshots are immutable: the stored one is handed out as it is, and replaced whole.
        self._subjects: dict[str, SubjectSnapshot] = {}
        self._lock = threading.Lock()

    def load(self, subject_ref: str) -> SubjectSnapshot:
        """Everything stored for ``subject_ref``; see ``Storage.load``."""
        with self._lock:
            snapshot = self._subjects.get(subject_ref)
        return SubjectSnapshot(subject_ref=subject_ref) if snapshot is None else snapshot

    def commit(self, change: Commit) -> bool:
        """Compare-and-set on the subject's version; see ``Storage.commit``."""
        snapshot = SubjectSnapshot(
            subject_ref=change.subject_ref,
            version=change.expected_version + 1,
            incarnation=change.incarnation,
            codes=change.codes,
            failure_logs=change.failure_logs,
            keep_until=change.keep_until,
            identity=change.identity,
            moved=change.moved,
        )
        with self._lock:
            current = self._subjects.get(change.subject_ref)
            if current is None:
                if change.expected_version != 0:
                    return False
            elif (
                current.version != change.expected_version
                or current.incarnation != change.incarnation
            ):
                return False
            self._subjects[change.subject_ref] = snapshot
            return True

    def purge(self, now: datetime, limit: int) -> int:
        """Delete up to ``limit`` subjects kept until ``now`` or earlier; see ``Storage.purge``."""
        return len(self.purge_snapshots(now, limit))

    def purge_snapshots(self, now: datetime, limit: int) -> list[SubjectSnapshot]:
        """``purge``, returning the deleted snapshots; see ``PurgeReporting.purge_snapshots``."""
        with self._lock:
            done = list(
                islice(
                    (
                        snapshot
                        for snapshot in self._subjects.values()
                        # Every stored snapshot has the keep_until of the commit that wrote it.
                        if snapshot.keep_until is not None and snapshot.keep_until <= now
                    ),
                    limit,
                )
            )
            for snapshot in done:
                del self._subjects[snapshot.subject_ref]
        return done

    def scan_subjects(
        self, after: str | None, limit: int
    ) -> tuple[list[SubjectSnapshot], str | None]:
        """A page of stored subjects in ``subject_ref`` order; see ``SubjectScanning``."""
        with self._lock:
            refs = sorted(ref for ref in self._subjects if after is None or ref > after)
            page = [self._subjects[ref] for ref in refs[:limit]]
        more = len(refs) > limit
        return page, (page[-1].subject_ref if more else None)

    def snapshots(self) -> Iterator[SubjectSnapshot]:
        """Every subject's snapshot: the whole content of the storage, for audits and tests."""
        with self._lock:
            snapshots = list(self._subjects.values())
        yield from snapshots

    def migrate(self) -> None:
        """Nothing to create; here so that code written for any backend runs on memory too."""

    def close(self) -> None:
        """Nothing to release; the data stays readable. Here for the same reason as ``migrate``."""

    def __enter__(self) -> MemoryStorage:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MemoryStorage(subjects={len(self._subjects)})"


class AsyncMemoryStorage:
    """``MemoryStorage`` for asyncio. Nothing here blocks, so nothing is sent to a thread.

    ``sync`` is the underlying ``MemoryStorage``; pass one to share it with a ``CodeIssuer``.
    """

    def __init__(self, storage: MemoryStorage | None = None) -> None:
        self.sync = MemoryStorage() if storage is None else storage

    async def load(self, subject_ref: str) -> SubjectSnapshot:
        """See ``Storage.load``."""
        return self.sync.load(subject_ref)

    async def commit(self, change: Commit) -> bool:
        """See ``Storage.commit``."""
        return self.sync.commit(change)

    async def purge(self, now: datetime, limit: int) -> int:
        """See ``Storage.purge``."""
        return self.sync.purge(now, limit)

    async def purge_snapshots(self, now: datetime, limit: int) -> list[SubjectSnapshot]:
        """See ``MemoryStorage.purge_snapshots``."""
        return self.sync.purge_snapshots(now, limit)

    async def scan_subjects(
        self, after: str | None, limit: int
    ) -> tuple[list[SubjectSnapshot], str | None]:
        """See ``MemoryStorage.scan_subjects``."""
        return self.sync.scan_subjects(after, limit)

    def snapshots(self) -> Iterator[SubjectSnapshot]:
        """Every subject's snapshot; see ``MemoryStorage.snapshots``."""
        return self.sync.snapshots()

    async def migrate(self) -> None:
        """See ``MemoryStorage.migrate``."""

    async def close(self) -> None:
        """See ``MemoryStorage.close``."""

    async def __aenter__(self) -> AsyncMemoryStorage:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"Async{self.sync!r}"
