"""A private PostgreSQL server for the store tests, started the way the Swift store tests start theirs
(Sources/Store/LocalPostgres.swift): Debian's `postgresql` binaries, initdb into a temporary directory with trust
auth for the role r2ec, pg_ctl on a free loopback port with its socket in that directory; as root every server
command runs as the `postgres` user (PostgreSQL refuses root). `psql` is the independent reader the tests check the
store's rows with."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

ROOT = Path("/usr/lib/postgresql")


def binaries() -> Path | None:
    """The newest /usr/lib/postgresql/N/bin holding initdb, or None."""
    versions = sorted((int(p.name) for p in ROOT.glob("*") if p.name.isdigit()), reverse=True) if ROOT.exists() else []
    for v in versions:
        if (ROOT / str(v) / "bin" / "initdb").exists():
            return ROOT / str(v) / "bin"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalPostgres:
    def __init__(self) -> None:
        bin_dir = binaries()
        if bin_dir is None:
            raise RuntimeError(f"no PostgreSQL server under {ROOT}: install Debian's postgresql (make test does)")
        self.bin = bin_dir
        self.directory = Path(tempfile.mkdtemp(prefix="r2ec-pg-py-"))
        if os.getuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        self.port = free_port()
        self.databases = 0
        self._as_server_user(self.bin / "initdb", "-D", self.directory / "data", "-U", "r2ec", "--auth=trust", "-E",
                             "UTF8", "--no-sync", "--no-instructions")
        self.start()

    def _as_server_user(self, program, *arguments, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(program), *map(str, arguments)]
        if os.getuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stderr}")
        return done

    def start(self) -> None:
        self._as_server_user(self.bin / "pg_ctl", "-D", self.directory / "data", "-l", self.directory / "log", "-w",
                             "-t", "30", "-o", f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1",
                             "start")

    def stop(self, mode: str = "fast") -> None:
        """`fast`: clients disconnected, clean shutdown; `immediate`: like a crash."""
        self._as_server_user(self.bin / "pg_ctl", "-D", self.directory / "data", "-m", mode, "-w", "stop")

    def close(self) -> None:
        self._as_server_user(self.bin / "pg_ctl", "-D", self.directory / "data", "-m", "immediate", "-w", "stop",
                             check=False)
        shutil.rmtree(self.directory, ignore_errors=True)

    def new_database(self) -> str:
        """A URI of a new, empty database of this server."""
        self.databases += 1
        name = f"r2ec_py_{self.databases}"
        self.psql(f"CREATE DATABASE {name}", "postgres")
        return self.uri(name)

    def uri(self, database: str) -> str:
        return f"postgres://r2ec@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str) -> str:
        """Runs SQL through psql; its unaligned, tuples-only output."""
        done = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "r2ec", "-d", database, "-X",
                               "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql], capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(f"psql {sql!r} exited {done.returncode}: {done.stderr}")
        return done.stdout.strip()
