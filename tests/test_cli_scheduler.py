"""The scheduler's configuration errors reach the operator as one line, not a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.test_cli import run
from tower.settings import DEFAULT_DATA_DIR


def test_serve_with_a_webhook_secret_missing_fails_in_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(DEFAULT_DATA_DIR, data)
    (data / "notify.toml").write_text(
        '[[channels]]\nname = "hook"\nkind = "webhook"\nurl = "http://127.0.0.1:9/x"\n'
        'secret_env = "TOWER_TEST_MISSING_SECRET"\n', encoding="utf-8")
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "REDIS_URL": "", "TOWER_API_TOKEN": "",
           "TOWER_DATA_DIR": str(data)}
    proc = run(["serve", "--port", "1"], env)
    assert proc.returncode == 2
    out = proc.stdout + proc.stderr
    assert "TOWER_TEST_MISSING_SECRET" in out and "is not set" in out
    assert "Traceback" not in out
