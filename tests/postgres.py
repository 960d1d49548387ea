"""A throwaway PostgreSQL cluster for tests: Debian's binaries, a temporary directory, a
free port on 127.0.0.1, stopped and removed at the end.

Postgres refuses to run as root (CI runs as root), so there the cluster belongs to the
unprivileged ``postgres`` user the Debian package creates, and its commands run through
``runuser``. Authentication is ``trust`` on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

#: What to install when the binaries are missing (`.ci/run` does it in CI).
INSTALL_HINT = "apt-get install postgresql (Debian's package; .ci/run installs it in CI)"


def find_bin_dir() -> Path | None:
    """The newest installed server's bin directory, or None."""
    found = sorted(
        (path.parent for path in Path("/usr/lib/postgresql").glob("*/bin/initdb")),
        key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1]
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresCluster:
    """initdb + pg_ctl start on a free port; :meth:`stop` stops it and removes its files."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="openai-costs-pg-"))
        self.port = _free_port()
        self.user = "postgres"
        self._as: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")  # created by Debian's package
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self.data = self.root / "data"

    def start(self) -> PostgresCluster:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "--auth=trust",
            f"--username={self.user}",
            "--encoding=UTF8",
            "--locale=C",
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} "
            f"-c unix_socket_directories={self.root} -c fsync=off -c TimeZone=UTC"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "log"),
            "-w",
            "start",
        )
        return self

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def sql(self, *statements: str, schema: str | None = None) -> list[list[str]]:
        """Run statements in one session; the last one's rows, each a list of text cells."""
        argv = [str(self.bin_dir / "psql"), *self.connection_args(), "-X", "-q", "-At", "-F", "\t"]
        argv += ["-v", "ON_ERROR_STOP=1"]
        if schema is not None:
            argv += ["-c", f'SET search_path TO "{schema}"']
        for statement in statements:
            argv += ["-c", statement]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return [line.split("\t") for line in done.stdout.splitlines()]

    def connection_args(self) -> list[str]:
        return ["-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", "postgres"]

    def loader_config(self, schema: str) -> dict[str, object]:
        """meltanolabs-target-postgres settings for this cluster."""
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "user": self.user,
            "password": "",
            "database": "postgres",
            "default_target_schema": schema,
        }

    def _run(self, program: str, *args: str) -> None:
        argv = [*self._as, str(self.bin_dir / program), *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            log = self.root / "log"
            detail = log.read_text() if log.exists() else ""
            raise RuntimeError(f"{program} failed: {done.stdout}{done.stderr}{detail}")
