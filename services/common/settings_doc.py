"""The settings reference as Markdown: one row per environment variable, from the typed model itself.

``docs/configuration.md`` is this output (``.venv/bin/aiots settings --markdown > docs/configuration.md``);
a test fails when the two drift apart.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, SecretStr

from aiots.services.common.settings import Settings

PLAIN_NAMES = {"database_url": "DATABASE_URL", "redis_url": "REDIS_URL", "databento_api_key": "DATABENTO_API_KEY"}
HEADER = """# Configuration

One typed settings object (`services/common/settings.py`). Sources, highest priority first: keyword
arguments, environment variables (prefix `AIOTS_`, `__` between section and field), a YAML file named
by `AIOTS_CONFIG_FILE`, then these defaults (which serve the embedded mode). `DATABASE_URL`,
`REDIS_URL` and `DATABENTO_API_KEY` are read without the prefix, or from files named by
`DATABASE_URL_FILE`, `REDIS_URL_FILE` and `DATABENTO_API_KEY_FILE`. Secrets are never logged.
Lists are comma-separated; mappings are JSON (`AIOTS_MARKET__DIVIDEND_YIELDS='{"AAPL": 0.005}'`). A
rate-limit bucket is set whole: give its `MAX_TOKENS` and `TOKENS_PER_FILL` together.

This page is generated: `.venv/bin/aiots settings --markdown > docs/configuration.md`.

| variable | default | meaning |
|---|---|---|
"""


def _text(value: Any) -> str:
    if value is None or isinstance(value, SecretStr):
        return "unset"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "(empty)"
    if isinstance(value, dict):
        return json.dumps(value) if value else "(empty)"
    return str(value)


def rows(model: BaseModel | None = None, prefix: str = "AIOTS_") -> Iterator[tuple[str, str, str]]:
    """(variable, default, meaning) for every leaf field of the default settings, sections expanded
    depth first; defaults are read from the default instance (a section's own defaults included)."""
    top = model is None
    inst = model
    if inst is None:
        inst = Settings.model_construct(
            **{n: f.get_default(call_default_factory=True) for n, f in Settings.model_fields.items()}
        )
    for name, info in type(inst).model_fields.items():
        value = getattr(inst, name)
        if isinstance(value, BaseModel):
            yield from rows(value, f"{prefix}{name.upper()}__")
            continue
        var = PLAIN_NAMES.get(name, f"{prefix}{name.upper()}") if top else f"{prefix}{name.upper()}"
        yield var, _text(value), (info.description or "").replace("|", "\\|")


def markdown() -> str:
    """The whole docs/configuration.md."""
    return HEADER + "".join(f"| `{v}` | `{d}` | {m} |\n" for v, d, m in rows())
