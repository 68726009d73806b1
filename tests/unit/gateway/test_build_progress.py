"""The first build shows progress (issue 18 item 20): `make`'s dry run of a from-scratch build
prints a stage line before the venv, before the dependency install and before the Cython build,
keeps pip quiet, and sends the compiler's output to a log instead of the terminal. Oracle: GNU
make's own dry run (-n -B: every recipe, as it would run on a fresh clone)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make not installed")
def test_first_build_prints_stages_in_order_and_keeps_compiler_output_in_a_log() -> None:
    r = subprocess.run(
        ["make", "-n", "-B", ".venv/.stamp-build"], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    lines = r.stdout.splitlines()

    def first(fragment: str) -> int:
        return next(i for i, ln in enumerate(lines) if fragment in ln)

    venv, deps, core = first("==> [1/3]"), first("==> [2/3]"), first("==> [3/3]")
    dep_install = first("install -q -r build/requirements.txt")
    core_build = first("--no-deps -e . >build/build.log 2>&1")
    assert venv < deps < dep_install < core < core_build
    assert "compiler output: build/build.log" in lines[core]
    pip_installs = [ln for ln in lines if "/pip install" in ln]
    assert pip_installs and all(" -q " in ln for ln in pip_installs), pip_installs
