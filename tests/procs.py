"""The real `respgate serve` as a child process, for tests that crash it, restart it or read its stderr.

`ProxyProcesses` is the owner a fixture holds: every process it spawns is killed (its whole process
group, so uvicorn's worker processes too) and reaped when the test ends, pass or fail.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
_POLL = 0.02


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def serve_command(config_path: str | os.PathLike[str] | None, port: int, args: Sequence[str] = (),
                  host: str = "127.0.0.1") -> list[str]:
    """The CLI run with this interpreter, so the child sees the same installed respgate."""
    cmd = [sys.executable, "-m", "respgate.cli", "serve", "--host", host, "--port", str(port)]
    if config_path is not None:
        cmd += ["--config", os.fspath(config_path)]
    return cmd + list(args)


def run_cli(args: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | os.PathLike[str] | None = None,
            timeout: float = START_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """`respgate <args>` to completion (for start-ups that must fail); killed if it outlives `timeout`."""
    return subprocess.run([sys.executable, "-m", "respgate.cli", *args], env=_child_env(env), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


def process_group_members(pgid: int) -> list[int]:
    """Pids of running (not zombie) processes whose process group is `pgid`, read from /proc."""
    members: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after its closing paren.
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry))
    return members


def _child_env(overrides: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(overrides or {})
    env["PYTHONUNBUFFERED"] = "1"
    return env


class ProxyProcess:
    """One `respgate serve` process: `url`, `kill9()`, `stop()`, `stderr_text()`."""

    def __init__(self, cmd: list[str], port: int, *, env: Mapping[str, str] | None, cwd: str | None) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"  # reachable whether it binds loopback or 0.0.0.0
        self.command = cmd
        self._log: IO[bytes] = tempfile.TemporaryFile(prefix="respgate-stderr-")  # noqa: SIM115 - closed in close()
        # A session of its own: the process group id is the pid, so one killpg reaches the workers too.
        self.process = subprocess.Popen(cmd, env=_child_env(env), cwd=cwd, stdin=subprocess.DEVNULL,
                                        stdout=self._log, stderr=self._log, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_live(self, timeout: float = START_TIMEOUT) -> None:
        """Until GET /health/liveliness answers 200; raises with the server's stderr otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise RuntimeError(f"respgate exited with {self.process.returncode} before it was live:\n"
                                   f"{self.stderr_text()}")
            if self._answers():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"respgate was not live on {self.url} after {timeout:g}s:\n{self.stderr_text()}")
            time.sleep(_POLL)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health/liveliness", timeout=1) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def kill9(self) -> None:
        """A crash: SIGKILL to the whole group, no shutdown hooks run; then reap it."""
        self._signal_group(signal.SIGKILL)
        self.process.wait(STOP_TIMEOUT)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """A graceful stop (SIGTERM, as a supervisor sends); SIGKILL if it hangs. Returns the exit code."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.process.wait(timeout)
        self._signal_group(signal.SIGKILL)  # a worker that outlived its supervisor
        return self.process.returncode

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def group_members(self) -> list[int]:
        """Live pids in this server's process group (the supervisor and its workers); Linux only."""
        return process_group_members(self.process.pid)

    def stderr_text(self) -> str:
        """Everything the process wrote to stderr and stdout so far."""
        if self._log.closed:
            return ""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def close(self) -> None:
        """Kill (if still running), reap, and release the log file; idempotent."""
        self._signal_group(signal.SIGKILL)
        self.process.wait(STOP_TIMEOUT)
        if not self._log.closed:
            self._log.close()


def spawn_proxy(config_path: str | os.PathLike[str] | None, *, port: int | None = None,
                env: Mapping[str, str] | None = None, args: Sequence[str] = (),
                cwd: str | os.PathLike[str] | None = None, host: str = "127.0.0.1",
                wrapper: Sequence[str] = ()) -> ProxyProcess:
    """Start `respgate serve` and return once it is live. The caller owns the process (see ProxyProcesses).
    `wrapper`: a command the server runs under (e.g. `setpriv ...` to drop capabilities).

    `port=None` takes a free loopback port; since another process may grab it between the probe and
    the bind, a start-up that fails on "address already in use" is retried on a fresh port.
    """
    workdir = os.fspath(cwd) if cwd is not None else (
        str(Path(config_path).parent) if config_path is not None else None)
    attempts = 1 if port is not None else 3
    for attempt in range(attempts):
        chosen = port if port is not None else free_port()
        proc = ProxyProcess([*wrapper, *serve_command(config_path, chosen, args, host)], chosen, env=env,
                            cwd=workdir)
        try:
            proc.wait_live()
            return proc
        except RuntimeError:
            text = proc.stderr_text()
            proc.close()
            if "address already in use" not in text.lower() or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


class ProxyProcesses:
    """Owns spawned servers: `with ProxyProcesses() as procs: procs.spawn(config)`; all closed on exit."""

    def __init__(self) -> None:
        self._all: list[ProxyProcess] = []

    def spawn(self, config_path: str | os.PathLike[str] | None, *, port: int | None = None,
              env: Mapping[str, str] | None = None, args: Sequence[str] = (),
              cwd: str | os.PathLike[str] | None = None, host: str = "127.0.0.1",
              wrapper: Sequence[str] = ()) -> ProxyProcess:
        proc = spawn_proxy(config_path, port=port, env=env, args=args, cwd=cwd, host=host, wrapper=wrapper)
        self._all.append(proc)
        return proc

    def close(self) -> None:
        for proc in self._all:
            proc.close()
        self._all.clear()

    def __enter__(self) -> ProxyProcesses:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
