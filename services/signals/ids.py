"""Deterministic ULIDs: the same (time, symbol, strategy) always gives the same id.

A ULID is 48 bits of milliseconds + 80 bits of entropy; here the entropy is a BLAKE2b hash
of the inputs, so replaying the same market yields the same ids (and ids still sort by time).
"""

from __future__ import annotations

import hashlib

from ulid import ULID


def signal_id(created_ns: int, *parts: str) -> str:
    ms = created_ns // 1_000_000
    entropy = hashlib.blake2b("|".join(parts).encode(), digest_size=10).digest()
    return str(ULID.from_bytes(ms.to_bytes(6, "big") + entropy))
