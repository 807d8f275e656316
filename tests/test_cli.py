"""The `tower` command, run as a user would (subprocesses, real files, real server)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.servers import TOWER, running
from tests.servers import free_port as _free_port
from tests.test_api import created, stage


def run(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TOWER, *args], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "REDIS_URL": "", "TOWER_API_TOKEN": ""}


def test_help_lists_the_commands(env: dict[str, str]) -> None:
    out = run(["--help"], env).stdout
    for command in ("serve", "demo", "worker", "ingest", "schema", "db", "projections", "flows"):
        assert command in out


def test_schema_prints_json_schema(env: dict[str, str]) -> None:
    result = run(["schema"], env)
    assert result.returncode == 0
    assert json.loads(result.stdout)["title"] == "Order Tower event v1"


def test_bad_setting_stops_with_one_line(env: dict[str, str]) -> None:
    result = run(["flows"], {**env, "TOWER_TZ": "Nowhere/Land"})
    assert result.returncode == 2
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "TOWER_TZ" in lines[0]


def test_broken_flow_file_names_file_and_key(env: dict[str, str], tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "flows.toml").write_text('[[flows]]\nid = "x"\nname = "X"\n', encoding="utf-8")
    result = run(["flows"], {**env, "TOWER_DATA_DIR": str(data)})
    assert result.returncode == 2
    assert "flows.toml" in result.stderr and "flows.0.stages" in result.stderr


def test_ingest_file_and_rebuild(env: dict[str, str], tmp_path: Path) -> None:
    lines = [orjson.dumps(created("o1")), b"not json", orjson.dumps(stage("o1", "entered", "picking", 1)),
             b"", orjson.dumps(created("o1"))]
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = run(["ingest", str(path)], env)
    summary = json.loads(result.stdout)
    assert summary["accepted"] == 2 and summary["duplicates"] == 1
    assert [r["index"] for r in summary["rejected"]] == [1]
    assert result.returncode == 1  # some items were rejected
    assert run(["projections", "rebuild"], env).returncode == 0
    again = run(["ingest", str(path)], env)
    assert json.loads(again.stdout)["duplicates"] == 3


@pytest.fixture
def server(env: dict[str, str]) -> Iterator[str]:
    port = _free_port()
    with running(env, port):
        yield f"http://127.0.0.1:{port}"


def _request(url: str, body: bytes | None = None, kind: str = "application/json") -> Any:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": kind} if body else {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_serve_answers_over_http(server: str) -> None:
    answer = _request(server + "/api/v1/events",
                      orjson.dumps([created("o5"), stage("o5", "entered", "picking", 1)]))
    assert answer["accepted"] == 2
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            order = _request(server + "/api/v1/orders/o5")
            if order["stage"] == "picking":
                break
        except urllib.error.HTTPError:
            pass
        time.sleep(0.2)
    assert order["stage"] == "picking"
    health = _request(server + "/healthz")
    assert health["ok"] is True
    page = urllib.request.urlopen(server + "/", timeout=10).read().decode()
    assert "<title>Order Tower</title>" in page


def test_demo_serves_live_simulated_traffic(env: dict[str, str]) -> None:
    port = _free_port()
    proc = subprocess.Popen([TOWER, "demo", "--port", str(port), "--warmup-days", "0.3"],
                            env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        status: dict[str, Any] = {}
        while time.monotonic() < deadline and not status.get("warm"):
            try:
                status = _request(base + "/api/v1/demo")
            except OSError:
                if proc.poll() is not None:
                    raise AssertionError(proc.stdout.read() if proc.stdout else "demo died") from None
            time.sleep(0.5)
        assert status.get("warm") and status["events_sent"] > 0
        funnel = _request(base + "/api/v1/funnel?flow=ecommerce")
        assert sum(funnel["by_status"].values()) > 0
        paused = _request(base + "/api/v1/demo/pause", body=b"{}")
        assert paused["paused"] is True
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
