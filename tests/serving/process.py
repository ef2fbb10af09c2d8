"""The local server as a separate process (`python -m serving serve`), for load, fuzz and soak runs.

A crash of the server (segfault, OOM kill, unhandled exception) ends that process rather than the test run,
so it can be detected (`alive()`, `returncode`), and its resident memory is the server's own (`rss_bytes()`).
Ports are chosen by the server (`--rest-port 0 --grpc-port 0`) and read from its start-up line; stdout and
stderr go to a log file whose tail is included in failure messages. Binds loopback only.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

try:
    import psutil
except ImportError:  # optional: rss_bytes() then reads /proc
    psutil = None

REPO = Path(__file__).resolve().parents[2]
_ACCESS = re.compile(r"^visionline serve: access api=")  # the access log (serving.server.access_log)
_START = re.compile(r"REST (http://127\.0\.0\.1:\d+)\s+gRPC (127\.0\.0\.1:\d+)\s+model (\S+) versions \[([\d, ]*)\]")


class ServerProcess:
    """`python -m serving serve --model-base BASE` on free loopback ports; a context manager."""

    def __init__(self, model_base: Path | None, log_path: Path, extra_args: tuple[str, ...] = (),
                 poll_interval: float = 0.5, start_timeout: float = 300) -> None:
        self.model_base = Path(model_base) if model_base is not None else None  # None: extra_args say what to serve
        self.log_path = Path(log_path)
        self.extra_args = tuple(extra_args)
        self.poll_interval = poll_interval
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None
        self.rest_url = ""
        self.grpc_target = ""
        self.model = ""
        self.versions: list[int] = []

    def start(self) -> ServerProcess:
        """Start the server and wait for its start-up line (models loaded, both ports bound)."""
        base = ["--model-base", str(self.model_base)] if self.model_base is not None else []
        command = [sys.executable, "-m", "serving", "serve", *base,
                   "--host", "127.0.0.1", "--rest-port", "0", "--grpc-port", "0",
                   "--poll-interval", str(self.poll_interval), *self.extra_args]
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout
        while True:
            match = _START.search(self.log_path.read_text(encoding="utf-8", errors="replace"))
            if match:
                break
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode} before it was ready:\n"
                                   f"{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server was not ready after {self.start_timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.2)
        self.rest_url, self.grpc_target, self.model = match.group(1), match.group(2), match.group(3)
        self.versions = [int(v) for v in re.findall(r"\d+", match.group(4))]
        return self

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.process is not None, "not started"
        return self.process.pid

    def alive(self) -> bool:
        """True while the server process is running."""
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        """Exit code once the process has ended (negative: killed by that signal)."""
        return None if self.process is None else self.process.poll()

    def rss_bytes(self) -> int:
        """Resident set size of the server process (psutil; /proc/<pid>/status VmRSS as a fallback)."""
        if psutil is None:
            status = Path(f"/proc/{self.pid}/status").read_text()
            return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1)) * 1024
        return int(psutil.Process(self.pid).memory_info().rss)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's log without its access-log lines (for failure messages)."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        kept = [line for line in text.splitlines() if not _ACCESS.search(line)]
        return "\n".join(kept[-lines:])

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM (graceful shutdown), SIGKILL after `timeout`; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
