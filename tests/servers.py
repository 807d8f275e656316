"""Real `tower serve` processes for the tests that talk to one over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TOWER = str(Path(sys.executable).parent / "tower")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`tower serve` on ``port`` with ``env``, answering /healthz, until the block ends."""
    # The server's log goes to a file: a pipe nobody reads fills up and blocks the server.
    log_path = Path(tempfile.mkstemp(prefix="tower-serve-", suffix=".log")[1])
    with log_path.open("wb") as log:
        proc = subprocess.Popen([TOWER, "serve", "--port", str(port)], env={**os.environ, **env},
                                stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(base + "/healthz", timeout=2)
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(log_path.read_text(errors="replace")[-4000:]) from None
                time.sleep(0.3)
        else:
            raise RuntimeError("server did not start")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log_path.unlink(missing_ok=True)
