"""Listening ports for gateway tests that nothing else on the host takes before the test binds them.

``bind(0)``-then-close hands out a port from the kernel's ephemeral range, which outgoing
connections (and other test processes doing the same) draw from too, so the port can be gone by
the time Envoy binds it. Here a port is drawn at random from a range *below* the ephemeral range
(and away from the stack's defaults 8000-8004, 9101-9104, 9900-9901, so a developer's ``make run``
is never touched), must be bindable right now, and is reserved for the whole test session:

* within this process: never handed out twice;
* across processes (other pytest sessions on the same host): an exclusive ``flock`` on
  ``<tmp>/aiots-test-ports/<port>`` that this process holds until it exits.
"""

from __future__ import annotations

import fcntl
import os
import random
import socket
import tempfile
from pathlib import Path
from typing import Any

#: below Linux's default ephemeral range (32768-60999) and above every default AI-OTS port
LOW, HIGH = 20_000, 32_000
TRIES = 500
_LOCK_DIR = Path(tempfile.gettempdir()) / "aiots-test-ports"
_held: dict[int, int] = {}  # port -> fd of its held lock file


def _bindable(port: int) -> bool:
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET, "0.0.0.0")):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def free_port() -> int:
    """A port reserved for this test session (see the module docstring)."""
    _LOCK_DIR.mkdir(parents=True, exist_ok=True)
    rng = random.SystemRandom()
    for _ in range(TRIES):
        port = rng.randint(LOW, HIGH)
        if port in _held:
            continue
        fd = os.open(_LOCK_DIR / str(port), os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        if not _bindable(port):
            os.close(fd)
            continue
        _held[port] = fd
        return port
    raise RuntimeError(f"no free port in {LOW}-{HIGH} after {TRIES} tries")


def gateway_settings(tmp: Path, **extra: Any) -> dict[str, Any]:
    """The ``gateway`` settings of a test's own Envoy: reserved ports, a random base id (several
    Envoys on one host), keys and the access log under ``tmp``; ``extra`` adds or overrides."""
    return {
        "host": "127.0.0.1",
        "port": free_port(),
        "admin_port": free_port(),
        "health_port": free_port(),
        "base_id": random.randint(1000, 1_000_000),
        "dev_key_dir": str(tmp / "keys"),
        "access_log_path": str(tmp / "access.log"),
        "log_level": "error",
        **extra,
    }
