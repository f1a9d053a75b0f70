"""Disk and file faults: a clear error naming the file and what to do, never a traceback."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aimusic.cli.main import app
from aimusic.core.config import PROJECT_ROOT
from aimusic.sources.demo import generate_table
from aimusic.store.db import Store, StoreError

runner = CliRunner()


def cli(*args: str):
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_missing_data_directory_is_created(tmp_path: Path):
    db = tmp_path / "new" / "nested" / "a.duckdb"
    code, output = cli("demo", "--posts", "50", "--db", str(db), "--no-score")
    assert code == 0, output
    assert Store(db, read_only=True).count("posts") > 0


def test_data_directory_that_cannot_exist(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, output = cli("demo", "--posts", "5", "--db", str(blocker / "a.duckdb"))
    assert code == 2
    assert output.startswith(f"error: cannot write the database {blocker / 'a.duckdb'}: cannot create the directory "
                             f"{blocker} (")


def _read_only_dir(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
        return ro
    if Path("/sys").is_dir():  # root ignores permissions; sysfs refuses new files even to root
        return Path("/sys")
    pytest.skip("no read-only directory available to this user")


def test_read_only_location(tmp_path: Path):
    target = _read_only_dir(tmp_path) / "aimusic.duckdb"
    code, output = cli("demo", "--posts", "5", "--db", str(target))
    assert code == 2
    assert str(target) in output
    assert "permission" in output.lower() or "cannot" in output.lower()


def test_corrupt_database_file(tmp_path: Path):
    db = tmp_path / "good.duckdb"
    Store(db).upsert_posts(generate_table(2000))
    broken = tmp_path / "broken.duckdb"
    shutil.copy(db, broken)
    with broken.open("r+b") as fh:  # scribble over the header
        fh.seek(0)
        fh.write(b"\x00" * 4096 + b"garbage" * 100)
    with pytest.raises(StoreError) as err:
        Store(broken).count("posts")
    assert str(broken) in str(err.value)
    code, output = cli("status", "--db", str(broken))
    assert code == 2 and str(broken) in output and "Move it aside" in output


def test_disk_full_is_a_clear_error(tmp_path: Path):
    db = tmp_path / "full.duckdb"
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (2_000_000, 2_000_000))\n"
        "from aimusic.cli.main import main\n"
        f"sys.argv = ['aimusic', 'demo', '--posts', '40000', '--no-score', '--db', {str(db)!r}]\n"
        "main()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output[-3000:]
    assert "Traceback" not in output
    assert "disk is full or a file size limit" in output and str(db) in output
