"""docs/configuration.md is the settings model's own reference: it lists every variable the model
reads, with its default, and it is regenerated when a setting changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aiots.services.common.settings import Settings
from aiots.services.common.settings_doc import markdown, rows

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def test_the_doc_is_current() -> None:
    assert DOC.read_text() == markdown(), "regenerate: .venv/bin/aiots settings --markdown > docs/configuration.md"


def test_every_listed_variable_is_read_by_the_settings() -> None:
    # oracle: pydantic-settings itself reads the variable name the table gives
    table = {v: d for v, d, _ in rows()}
    assert table["AIOTS_EXECUTION__FEE_PER_CONTRACT"] == "0.65"
    assert table["AIOTS_GATEWAY__RATE_LIMITS__READS__MAX_TOKENS"] == "400"  # the section's own default
    old = os.environ.get("AIOTS_EXECUTION__FEE_PER_CONTRACT")
    os.environ["AIOTS_EXECUTION__FEE_PER_CONTRACT"] = "0.5"
    os.environ["AIOTS_GATEWAY__RATE_LIMITS__READS__MAX_TOKENS"] = "7"
    os.environ["AIOTS_GATEWAY__RATE_LIMITS__READS__TOKENS_PER_FILL"] = "3"
    try:
        s = Settings()
        assert s.execution.fee_per_contract == 0.5
        assert s.gateway.rate_limits.reads.max_tokens == 7
        assert "AIOTS_GATEWAY__RATE_LIMITS__READS__MAX_TOKENS" in table
    finally:
        del os.environ["AIOTS_GATEWAY__RATE_LIMITS__READS__MAX_TOKENS"]
        del os.environ["AIOTS_GATEWAY__RATE_LIMITS__READS__TOKENS_PER_FILL"]
        if old is None:
            del os.environ["AIOTS_EXECUTION__FEE_PER_CONTRACT"]
        else:
            os.environ["AIOTS_EXECUTION__FEE_PER_CONTRACT"] = old
    assert table["DATABASE_URL"] == "unset" and "AIOTS_DATABASE_URL" not in table


def test_blank_secrets_are_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    # compose passes ${DATABENTO_API_KEY:-}: an empty key must mean "the simulator", not live with ""
    monkeypatch.setenv("DATABENTO_API_KEY", "")
    monkeypatch.setenv("REDIS_URL", "  ")
    s = Settings()
    assert s.databento_api_key is None and s.redis_url is None and s.simulated_feed and s.embedded_bus
