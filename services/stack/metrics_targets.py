"""The Prometheus targets of a stack on one host, as a ``file_sd_configs`` file.

A service run as N worker processes (``<service>.workers``) serves its metrics from every process:
the supervisor's own endpoint (``<service>.metrics_port``) and one per worker on a free port, each
with only that process's series. A static scrape config would see one of N. The supervisor writes
every endpoint to ``<data_dir>/prometheus/targets.json`` (Prometheus' file service discovery, which
re-reads the file when it changes) and rewrites it when a worker is started again on another port:

    scrape_configs:
      - job_name: aiots
        file_sd_configs: [{files: ["/path/to/data_dir/prometheus/targets.json"]}]

Each target group carries ``aiots_service`` and ``aiots_process`` (0: the supervisor's own
process, 1..N-1: the workers); the series inside already carry ``service``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})  # bound on every interface: scraped on loopback
LOOPBACK = "127.0.0.1"
TARGETS_FILE = Path("prometheus") / "targets.json"


def targets_path(data_dir: str | Path) -> Path:
    """Where a stack with ``data_dir`` writes its targets."""
    return Path(data_dir) / TARGETS_FILE


def target_groups(hosts: Mapping[str, str], ports: Mapping[str, Sequence[int | None]]) -> list[dict[str, object]]:
    """One file_sd group per process: ``ports[service][i]`` is process i's metrics port (None: not
    serving now, left out); ``hosts[service]`` the address it binds."""
    groups: list[dict[str, object]] = []
    for service, service_ports in ports.items():
        host = hosts.get(service, LOOPBACK)
        host = LOOPBACK if host in WILDCARD_HOSTS else host
        for i, port in enumerate(service_ports):
            if port is None:
                continue
            address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            groups.append({"targets": [address], "labels": {"aiots_service": service, "aiots_process": str(i)}})
    return groups


def write_targets(path: Path, groups: list[dict[str, object]]) -> None:
    """Replace ``path`` atomically (Prometheus never reads half a file). Blocking: call in a thread."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".targets-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(groups, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
