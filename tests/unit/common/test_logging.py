"""JSON logs: fields, trace ids inside a span, and redaction of secrets (hand-made examples)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from aiots.services.common import logging as alog
from aiots.services.common import telemetry
from aiots.services.common.settings import Settings

FAKE_DATABENTO = "db-FAKEk3yAbCdEfGhIjKlMnOpQrStUvWx"
FAKE_DB_PASSWORD = "s3cretPassw0rd-xyz"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    settings = Settings(
        databento_api_key=SecretStr(FAKE_DATABENTO),
        database_url=SecretStr(f"postgresql://aiots:{FAKE_DB_PASSWORD}@db.internal:5432/aiots"),
    )
    handler = alog.setup_logging(settings, stream=buf, json_logs=True)
    yield buf
    logging.getLogger().removeHandler(handler)
    alog._handler = None


def _lines(buf: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def test_json_record_fields_and_extras(captured: io.StringIO) -> None:
    logging.getLogger("aiots.test").info("hello %s", "world", extra={"port": 8001})
    (rec,) = _lines(captured)
    assert rec["msg"] == "hello world"
    assert rec["level"] == "INFO" and rec["logger"] == "aiots.test" and rec["port"] == 8001
    assert str(rec["ts"]).endswith("Z")


def test_trace_and_span_ids_inside_a_span(captured: io.StringIO) -> None:
    telemetry.setup_telemetry(Settings(), service="aiots")
    with telemetry.span("unit.log") as sp:
        logging.getLogger("aiots.test").warning("inside")
    (rec,) = _lines(captured)
    ctx = sp.get_span_context()
    assert rec["trace_id"] == f"{ctx.trace_id:032x}" and rec["span_id"] == f"{ctx.span_id:016x}"


def test_settings_secrets_and_known_shapes_are_redacted(captured: io.StringIO) -> None:
    log = logging.getLogger("aiots.test")
    log.info("key is %s", FAKE_DATABENTO)
    log.info("connecting", extra={"dsn": f"postgresql://aiots:{FAKE_DB_PASSWORD}@db.internal:5432/aiots"})
    log.info("raw password alone: " + FAKE_DB_PASSWORD)
    log.info("other url redis://:hunter2hunter2@cache:6379/0 and Bearer abc.def-ghi")
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    log.info("token=%s", jwt)
    try:
        raise ValueError(f"bad key {FAKE_DATABENTO}")
    except ValueError:
        log.exception("failed")
    pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
    log.info("loaded %s", pem)
    out = captured.getvalue()
    for secret in (FAKE_DATABENTO, FAKE_DB_PASSWORD, "hunter2hunter2", "abc.def-ghi", jwt, "MIIEvQIBADAN"):
        assert secret not in out, secret
    assert out.count(alog.REDACTED) >= 7
    assert "@cache:6379/0" in out  # the rest of an unregistered URL stays readable


def test_registered_secret_is_redacted(captured: io.StringIO) -> None:
    alog.register_secret("my-jwt-signing-key-material")
    logging.getLogger("aiots.test").info("signing with my-jwt-signing-key-material now")
    assert "my-jwt-signing-key-material" not in captured.getvalue()


def test_text_format_is_redacted_too() -> None:
    buf = io.StringIO()
    handler = alog.setup_logging(Settings(databento_api_key=SecretStr(FAKE_DATABENTO)), stream=buf, json_logs=False)
    try:
        logging.getLogger("aiots.test").info("key %s", FAKE_DATABENTO)
    finally:
        logging.getLogger().removeHandler(handler)
        alog._handler = None
    assert FAKE_DATABENTO not in buf.getvalue() and alog.REDACTED in buf.getvalue()
