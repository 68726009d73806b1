"""checkov (PyPI, Bridgecrew/Prisma's IaC scanner) on deploy/aws, the rendered Kubernetes manifests
and deploy/Dockerfile: no failed check, and every skipped check carries a written reason.

checkov runs once per test session (one process for the three frameworks, ~10-25 s). It lives in its
own virtual environment (.venv/checkov, made by `make test`): its pins (packaging<24, bc-python-hcl2,
which installs the same `hcl2` package as python-hcl2, ...) conflict with the project's. It runs
offline (--skip-download, BC_SKIP_MAPPING).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .test_deploy import render

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
FRAMEWORKS = ("terraform", "kubernetes", "dockerfile")
K8S_TREES = ("base", "overlays/production")
SKIP_COMMENT = re.compile(r"#\s*checkov:skip=([A-Za-z0-9_]+)(?::(.*))?")


def checkov_exe() -> str | None:
    for cand in (os.environ.get("AIOTS_CHECKOV"), str(ROOT / ".venv/checkov/bin/checkov"), shutil.which("checkov")):
        if cand and Path(cand).is_file():
            return cand
    return None


def _json_docs(text: str) -> list[dict[str, Any]]:
    """checkov -o json prints one JSON value per scanned directory (an object or a list of them)."""
    dec, i, out = json.JSONDecoder(), 0, []
    while i < len(text):
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            break
        doc, i = dec.raw_decode(text, i)
        out += doc if isinstance(doc, list) else [doc]
    return out


@pytest.fixture(scope="session")
def checkov_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Per framework: summary, failed and skipped checks (deduplicated), from one checkov run."""
    exe = checkov_exe()
    if exe is None:
        msg = "checkov not installed (`make test` creates .venv/checkov; or set AIOTS_CHECKOV)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    scan = tmp_path_factory.mktemp("checkov")
    (scan / "k8s").mkdir()
    for where in K8S_TREES:  # what kustomize renders is what gets applied
        (scan / "k8s" / f"{where.replace('/', '-')}.yaml").write_text(
            yaml.safe_dump_all(render(DEPLOY / "k8s" / where), sort_keys=False)
        )
    (scan / "docker").mkdir()
    shutil.copy(DEPLOY / "Dockerfile", scan / "docker" / "Dockerfile")
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    out = subprocess.run(
        [exe, "-d", str(DEPLOY / "aws"), "-d", str(scan), "--framework", *FRAMEWORKS,
         "-o", "json", "--compact", "--skip-download"],
        capture_output=True, text=True, env=env, timeout=240,
    )  # fmt: skip
    assert out.returncode in (0, 1), out.stderr[-3000:]  # 1: some check failed (reported below)
    results: dict[str, dict[str, Any]] = {}
    for rep in _json_docs(out.stdout):
        r = results.setdefault(rep["check_type"], {"summary": rep["summary"], "failed": {}, "skipped": {}})
        for kind in ("failed", "skipped"):
            for c in rep.get("results", {}).get(f"{kind}_checks", []):
                key = (c["check_id"], c["resource"], c.get("file_abs_path") or c["file_path"])
                r[kind][key] = c
    return results


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_checkov_passes(checkov_results: dict[str, dict[str, Any]], framework: str) -> None:
    r = checkov_results[framework]
    assert r["summary"]["resource_count"] > 0 and r["summary"]["parsing_errors"] == 0, r["summary"]
    failed = [f"{c['check_id']} {c['check_name']}: {c['resource']} ({c['file_path']})" for c in r["failed"].values()]
    assert not failed, "\n".join(failed)
    assert r["summary"]["passed"] > 50


def test_every_skipped_check_has_a_written_reason(checkov_results: dict[str, dict[str, Any]]) -> None:
    n = 0
    for framework, r in checkov_results.items():
        for (cid, resource, _f), c in r["skipped"].items():
            reason = (c.get("check_result") or {}).get("suppress_comment") or ""
            assert len(reason.strip()) >= 20, f"{framework} {cid} on {resource}: skipped without a reason"
            n += 1
    assert n > 0  # the skips below exist, so checkov must report them


# ----------------------------------------------------------------------------- skips in the sources


def source_skips() -> dict[str, dict[str, str]]:
    """Per framework: check id -> reason, as written in the sources (comments, k8s annotations)."""
    out: dict[str, dict[str, str]] = {f: {} for f in FRAMEWORKS}
    files = [("terraform", p) for p in sorted((DEPLOY / "aws").rglob("*.tf"))] + [("dockerfile", DEPLOY / "Dockerfile")]
    for framework, path in files:
        for line in path.read_text().splitlines():
            m = SKIP_COMMENT.search(line)
            if m:
                out[framework][f"{m.group(1)}@{path.name}:{line.strip()[:40]}"] = (m.group(2) or "").strip()
    for p in sorted((DEPLOY / "k8s").rglob("*.yaml")):
        for doc in yaml.safe_load_all(p.read_text()):
            for k, v in ((doc or {}).get("metadata", {}).get("annotations") or {}).items():
                if k.startswith("checkov.io/skip"):
                    cid, _, reason = str(v).partition("=")
                    out["kubernetes"][f"{cid}@{p.name}:{doc['metadata']['name']}"] = reason.strip()
    return out


def test_every_skip_in_the_sources_has_a_reason() -> None:
    skips = source_skips()
    assert all(skips.values()), "expected skips in every framework"
    for framework, found in skips.items():
        for where, reason in found.items():
            assert len(reason) >= 20, f"{framework}: skip {where} has no written reason"
    assert not list(ROOT.glob(".checkov.y*ml")) and not list(DEPLOY.rglob(".checkov.y*ml")), (
        "skips live beside the code"
    )


def test_skip_comment_pattern() -> None:
    assert SKIP_COMMENT.search("  # checkov:skip=CKV_AWS_1:because").groups() == ("CKV_AWS_1", "because")  # type: ignore[union-attr]
    assert SKIP_COMMENT.search("#checkov:skip=CKV2_AWS_57").groups() == ("CKV2_AWS_57", None)  # type: ignore[union-attr]


def test_every_skip_in_the_sources_is_used(checkov_results: dict[str, dict[str, Any]]) -> None:
    """A skip checkov never applied is stale (the check passes now, or the id is mistyped); and
    checkov skips nothing that is not written in the sources."""
    for framework, found in source_skips().items():
        written = {w.split("@")[0] for w in found}
        applied = {cid for (cid, _r, _f) in checkov_results[framework]["skipped"]}
        assert written == applied, f"{framework}: written {sorted(written)} vs applied {sorted(applied)}"
