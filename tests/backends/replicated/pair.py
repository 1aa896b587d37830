"""A PostgreSQL primary and its synchronous standby, built from the server binaries on the machine.

``build_pair()`` runs ``initdb`` for the primary, starts it on a free loopback port, copies it with
``pg_basebackup`` into the standby and starts that on another free port, streaming from the
primary. The primary lists the standby in ``synchronous_standby_names`` with ``synchronous_commit =
on``: it acknowledges a commit only once the standby has flushed it (``build_pair(synchronous=
False)`` leaves the list empty: the standby then streams asynchronously and a commit is
acknowledged once the primary alone has it). The standby's own ``synchronous_standby_names`` is
empty, so that once promoted it runs alone instead of waiting for a standby that does not exist.

Everything runs as the ``postgres`` user when the tests run as root (``runuser``, else ``su``), in
a temporary directory that user owns; the servers listen on 127.0.0.1 only (no Unix socket), trust
loopback connections, and are stopped by process id (``postmaster.pid``): ``SIGQUIT``, then
``SIGKILL`` of the process group. ``Pair.kill_primary`` ``SIGKILL``s the primary's whole process
group, postmaster and backends at once, as when its machine dies; ``Pair.promote`` makes the
standby the primary. ``Pair.fail_over`` does both and swaps the two servers' roles, and
``Pair.rejoin`` then rebuilds the dead server, on its own port, as the new primary's standby, so
that the pair can fail over again and again.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import attrs

__all__ = ["Missing", "Pair", "Server", "build_pair", "check_machine", "find_binaries"]

#: The programs the pair needs, looked for in ``TELECARD_TEST_POSTGRES_BIN`` or
#: ``/usr/lib/postgresql/<version>/bin`` (the newest version first), then on ``PATH``.
PROGRAMS = ("initdb", "pg_ctl", "pg_basebackup", "postgres")
#: The standby's name, as the primary's ``synchronous_standby_names`` lists it.
STANDBY_NAME = "standby1"
#: The longest wait for a server to start, stop, catch up or be promoted (seconds).
WAIT = 60.0

_SETTINGS = """
# --- telecard-auth test pair ---
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = ''
max_connections = 120
shared_buffers = 32MB
wal_level = replica
max_wal_senders = 4
hot_standby = on
synchronous_commit = on
synchronous_standby_names = '{standby}'
wal_receiver_status_interval = 1s
# The standby retries a lost primary this often; promotion could otherwise wait out the 5 s default.
wal_retrieve_retry_interval = 100ms
log_min_messages = warning
"""


class Missing(Exception):
    """What the machine lacks to build the pair (a binary, the ``postgres`` user, ``runuser``)."""


def find_binaries() -> Path:
    """The directory holding every program of ``PROGRAMS``; ``Missing`` says what is absent."""
    given = os.environ.get("TELECARD_TEST_POSTGRES_BIN")
    if given:
        candidates = [Path(given)]
    else:

        def version(path: Path) -> tuple[int, ...]:
            return tuple(int(part) for part in re.findall(r"[0-9]+", path.parent.name))

        candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
        which = shutil.which("initdb")
        if which:
            candidates.append(Path(which).resolve().parent)
    for folder in candidates:
        if all((folder / program).is_file() for program in PROGRAMS):
            return folder
    where = given or "/usr/lib/postgresql/*/bin or PATH"
    raise Missing(f"the PostgreSQL server programs {', '.join(PROGRAMS)} are not in {where}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, which nobody may reap here, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill(0)
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


@attrs.define
class Server:
    """One PostgreSQL server of the pair: its data directory and its loopback port."""

    name: str
    data: Path
    port: int
    #: The postmaster's process id, read from ``postmaster.pid`` once the server is up.
    pid: int | None = None

    @property
    def url(self) -> str:
        """A libpq URL of this server alone, as the superuser ``postgres``."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def log(self) -> Path:
        """The server's log file, beside its data directory."""
        return self.data.with_suffix(".log")

    def read_pid(self) -> int:
        """The postmaster's process id from ``postmaster.pid``."""
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])
        return self.pid

    def alive(self) -> bool:
        """Whether the postmaster still runs."""
        return self.pid is not None and _alive(self.pid)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the postmaster's process group (its backends too), or to it alone."""
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            group = os.getpgid(self.pid)
            if group == self.pid:
                os.killpg(group, sig)
            else:
                os.kill(self.pid, sig)

    def stop(self) -> None:
        """Immediate shutdown (``SIGQUIT``); ``SIGKILL`` of the group if it is not gone in time."""
        if not self.alive():
            return
        self.kill(signal.SIGQUIT)
        deadline = time.monotonic() + 10.0
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.kill(signal.SIGKILL)
        deadline = time.monotonic() + 10.0
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.05)


@attrs.define
class Pair:
    """A primary, its synchronous standby, and the means to run their programs."""

    root: Path
    binaries: Path
    primary: Server
    standby: Server
    #: Runs a program as the servers' owner: ``runuser -u postgres --`` (or ``su``) as root.
    as_owner: tuple[str, ...]
    #: The owner's uid and gid, for the files made here.
    owner: tuple[int, int]
    #: Whether the primary waits for the standby to flush each commit before acknowledging it.
    synchronous: bool = True

    def url(self, *, dbname: str = "postgres", options: str = "") -> str:
        """The multi-host URL of the pair: primary first, then standby; only a primary will do."""
        query = "target_session_attrs=read-write" + (f"&{options}" if options else "")
        hosts = f"127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}"
        return f"postgresql://postgres@{hosts}/{dbname}?{query}"

    def run(self, program: str, *arguments: str | Path) -> None:
        """Run one of the server programs as the owner; its output goes into the failure."""
        command = [*self.as_owner, str(self.binaries / program), *map(str, arguments)]
        done = subprocess.run(  # noqa: S603 - the machine's own PostgreSQL programs
            command,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=WAIT + 30,
            check=False,
        )
        if done.returncode:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr[-2000:]}")

    def start(self, server: Server) -> None:
        """Start ``server`` and wait until it accepts connections."""
        self.run("pg_ctl", "start", "-w", "-t", str(int(WAIT)), "-D", server.data, "-l", server.log)
        server.read_pid()

    def kill_primary(self) -> None:
        """``SIGKILL`` the primary, postmaster and backends at once, and wait until it is gone."""
        self.primary.kill(signal.SIGKILL)
        deadline = time.monotonic() + 10.0
        while self.primary.alive() and time.monotonic() < deadline:
            time.sleep(0.01)

    def promote(self) -> None:
        """Promote the standby (``pg_promote``, waiting for it to finish)."""
        import psycopg

        with psycopg.connect(self.standby.url, autocommit=True, connect_timeout=10) as connection:
            row = connection.execute("SELECT pg_promote(true, %s)", (int(WAIT),)).fetchone()
        if not row or row[0] is not True:
            raise RuntimeError("pg_promote did not promote the standby in time")

    def wait_in_sync(self) -> None:
        """Wait until the primary reports the standby as its synchronous standby (streaming, as
        an asynchronous one, when the pair is not ``synchronous``)."""
        import psycopg

        wanted = "sync" if self.synchronous else "async"
        deadline = time.monotonic() + WAIT
        state = None
        while time.monotonic() < deadline:
            with psycopg.connect(self.primary.url, autocommit=True) as connection:
                row = connection.execute(
                    "SELECT sync_state FROM pg_stat_replication WHERE application_name = %s",
                    (STANDBY_NAME,),
                ).fetchone()
            state = row[0] if row else None
            if state == wanted:
                return
            time.sleep(0.05)
        raise RuntimeError(f"the standby is not {wanted} after {WAIT:g} s (state {state})")

    def fail_over(self) -> None:
        """Kill the primary and promote the standby, which becomes ``primary``; the dead server
        is ``standby`` until ``rejoin`` rebuilds it."""
        self.kill_primary()
        self.promote()
        self.primary, self.standby = self.standby, self.primary

    def rejoin(self) -> None:
        """Rebuild the dead ``standby`` from the primary on its own port and directory, start it
        streaming, make the primary wait for it again (if ``synchronous``), and wait until it is
        in step. The primary runs alone until then."""
        import psycopg

        self.standby.stop()
        shutil.rmtree(self.standby.data)
        self.standby.log.unlink(missing_ok=True)
        # Copied before the primary names its standby: a copy that brought the name along would,
        # once promoted itself, wait for a standby that does not exist.
        self.copy_standby()
        if self.synchronous:
            with psycopg.connect(self.primary.url, autocommit=True) as connection:
                connection.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'")
                connection.execute("SELECT pg_reload_conf()")
        self.wait_in_sync()

    def copy_standby(self) -> None:
        """``pg_basebackup`` the primary into ``standby``'s directory and start it streaming."""
        self.run(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres",
            "-D", self.standby.data, "-X", "stream", "--checkpoint=fast", "--no-sync",
        )  # fmt: skip
        (self.standby.data / "standby.signal").touch()
        os.chown(self.standby.data / "standby.signal", *self.owner)
        conninfo = (
            f"host=127.0.0.1 port={self.primary.port} user=postgres application_name={STANDBY_NAME}"
        )
        # Appended after the primary's settings that the copy brought along: the last one counts.
        _configure(self.standby.data, self.standby.port, "", [f"primary_conninfo = '{conninfo}'"])
        self.start(self.standby)

    def wait_replayed(self) -> None:
        """Wait until the standby has replayed everything the primary has written so far.

        A synchronous standby has flushed every acknowledged commit; replaying it, which makes
        it visible to the standby's readers, may come a moment later.
        """
        import psycopg

        with psycopg.connect(self.primary.url, autocommit=True) as connection:
            row = connection.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert row is not None
        deadline = time.monotonic() + WAIT
        with psycopg.connect(self.standby.url, autocommit=True) as connection:
            while time.monotonic() < deadline:
                caught_up = connection.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (row[0],)
                ).fetchone()
                if caught_up and caught_up[0]:
                    return
                time.sleep(0.01)
        raise RuntimeError(f"the standby did not replay the primary's WAL in {WAIT:g} s")

    def close(self) -> None:
        """Stop both servers by process id and remove their directory."""
        for server in (self.standby, self.primary):
            server.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _owner() -> tuple[tuple[str, ...], int, int]:
    """How to run a program as the servers' owner, and that owner's uid and gid."""
    if os.geteuid() != 0:
        return (), os.getuid(), os.getgid()
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        raise Missing("the tests run as root and there is no 'postgres' user") from None
    runuser, su = shutil.which("runuser"), shutil.which("su")
    if runuser is not None:
        return (runuser, "-u", "postgres", "--"), user.pw_uid, user.pw_gid
    if su is not None:
        # su hands the words after "--" to the shell: "$0" is the program, "$@" the rest.
        script = 'exec "$0" "$@"'
        return (su, "-s", "/bin/sh", "-c", script, "postgres", "--"), user.pw_uid, user.pw_gid
    raise Missing("the tests run as root and neither 'runuser' nor 'su' is installed")


def _temporary_root(uid: int, gid: int) -> Path:
    """A new directory for both data directories, owned by the servers' owner.

    Under the usual temporary directory if the owner can reach it (root's own may be private),
    else under ``/tmp``.
    """
    base = Path(tempfile.gettempdir())
    if os.geteuid() == 0 and any(
        not folder.stat().st_mode & 0o001 for folder in (base, *base.parents)
    ):
        base = Path("/tmp")  # noqa: S108 - a fresh mkdtemp directory, chowned at once
    root = Path(tempfile.mkdtemp(prefix="telecard-pg-pair-", dir=base))
    os.chown(root, uid, gid)
    return root


def _configure(data: Path, port: int, standby_names: str, extra: Sequence[str] = ()) -> None:
    with (data / "postgresql.conf").open("a", encoding="utf-8") as conf:
        conf.write(_SETTINGS.format(port=port, standby=standby_names))
        conf.writelines(f"{line}\n" for line in extra)


def check_machine() -> None:
    """``Missing`` says what the machine lacks to build a pair, if anything."""
    find_binaries()
    _owner()


def build_pair(*, synchronous: bool = True) -> Pair:
    """Build and start a primary and its standby, synchronous unless told otherwise; ``Missing``
    if the machine cannot."""
    binaries = find_binaries()
    as_owner, uid, gid = _owner()
    root = _temporary_root(uid, gid)
    pair = Pair(
        root=root,
        binaries=binaries,
        primary=Server("a", root / "a", free_port()),
        standby=Server("b", root / "b", free_port()),
        as_owner=as_owner,
        owner=(uid, gid),
        synchronous=synchronous,
    )
    try:
        pair.run(
            "initdb", "-D", pair.primary.data, "-U", "postgres", "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        names = STANDBY_NAME if synchronous else ""
        _configure(pair.primary.data, pair.primary.port, names)
        pair.start(pair.primary)
        pair.copy_standby()
        pair.wait_in_sync()
    except BaseException:
        pair.close()
        raise
    return pair
