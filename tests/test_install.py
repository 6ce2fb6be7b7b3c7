"""A plain (non-editable) install finds the packaged baselines and ships no test or one-off code."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_a_plain_install_finds_the_packaged_baselines(tmp_path):
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is not installed here: pip cannot build the wheel offline")
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    code = (
        "from bench.storage import layout\n"
        "print(layout.default_baselines())\n"
        "print(len(list(layout.default_baselines().glob('*/*.json'))), "
        "layout.published_path().exists())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(target)},
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    where, found = result.stdout.splitlines()
    assert Path(where) == target / "cnnbench_baselines" / "measured"
    assert found == f"{len(list((ROOT / 'baselines' / 'measured').glob('*/*.json')))} True"
    shipped = {p.relative_to(target / "bench").as_posix() for p in (target / "bench").rglob("*.py")}
    assert {"cli/plugin.py", "training/trainer.py", "storage/records.py"} <= shipped
    assert not any(name.startswith(("suites/", "investigations/", "test_")) for name in shipped)


def test_a_folder_called_baselines_in_the_working_directory_does_not_shadow_them(tmp_path):
    (tmp_path / "baselines").mkdir()  # as `pytest bench --cnnbench-baselines=baselines` makes
    code = (
        "from bench.storage import layout; print(layout.targets_path(), layout.default_baselines())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True,
        timeout=120,
    )  # fmt: skip
    targets, measured = map(Path, result.stdout.split())
    assert targets.is_file() and any(measured.glob("*/*.json"))
    assert tmp_path not in targets.parents
