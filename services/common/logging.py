"""Logging for every AI-OTS process: JSON lines with trace and span ids, secrets redacted.

:func:`setup_logging` installs one handler on the root logger (stderr). Each record becomes one JSON
object: ``ts`` (RFC 3339 UTC), ``level``, ``logger``, ``msg``, ``service``, ``trace_id``/``span_id``
(when inside a span), the record's ``extra`` fields, and ``exc`` for exceptions. With
``telemetry.json_logs = false`` the same fields are printed as a readable line.

Redaction happens on the final text of every record (message, extras and tracebacks alike): the values
of every secret in the settings (``SecretStr``: DATABASE_URL, REDIS_URL, DATABENTO_API_KEY), anything
registered with :func:`register_secret` (e.g. JWT private keys), and well-known secret shapes
(Databento keys ``db-...``, JWTs, passwords in URLs, ``Bearer`` tokens, PEM private keys).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from typing import Any, TextIO

from pydantic import SecretStr

from aiots.services.common.settings import Settings

REDACTED = "[REDACTED]"
MIN_SECRET_CHARS = 6

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # PEM private keys (RSA/EC/PKCS8)
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
        REDACTED,
    ),
    # Databento API keys: "db-" + 29 alphanumerics
    (re.compile(r"\bdb-[A-Za-z0-9]{20,}\b"), REDACTED),
    # JWTs (three base64url parts, header starts with eyJ)
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+"), REDACTED),
    # scheme://user:password@host
    (re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]+@"), r"\1" + REDACTED + "@"),
    # Authorization: Bearer <token>
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1" + REDACTED),
    # key=value / "key": "value" for names that say secret
    (
        re.compile(
            r"(?i)((?:password|passwd|secret|api[_-]?key|token|private[_-]?key)[\"']?\s*[:=]\s*[\"']?)"
            r"[^\s\"',;}]+"
        ),
        r"\1" + REDACTED,
    ),
)

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_RESERVED = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime", "taskName"}
)


def register_secret(value: str | SecretStr | None) -> None:
    """Never print ``value`` (and, for URLs, its password) in any log line of this process."""
    if value is None:
        return
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    if len(raw) < MIN_SECRET_CHARS:
        return
    with _secrets_lock:
        _secrets.add(raw)
        m = re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@]*:([^@]+)@", raw)
        if m and len(m.group(1)) >= MIN_SECRET_CHARS:
            _secrets.add(m.group(1))


def register_settings_secrets(settings: Settings) -> None:
    """Register every ``SecretStr`` of the settings (recursively)."""

    def walk(obj: Any) -> None:
        if isinstance(obj, SecretStr):
            register_secret(obj)
        elif hasattr(obj, "__pydantic_fields__"):
            for name in type(obj).__pydantic_fields__:
                walk(getattr(obj, name, None))
        elif isinstance(obj, dict):
            for v in obj.values():
                walk(v)
        elif isinstance(obj, list | tuple):
            for v in obj:
                walk(v)

    walk(settings)


def redact(text: str) -> str:
    """``text`` with every registered secret and known secret shape replaced by ``[REDACTED]``."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for s in secrets:
        if s in text:
            text = text.replace(s, REDACTED)
    for pat, repl in _PATTERNS:
        text = pat.sub(repl, text)
    return text


def _context_fields() -> dict[str, Any]:
    from aiots.services.common.telemetry import current_service, current_trace_ids

    out: dict[str, Any] = {"service": current_service.get()}
    ids = current_trace_ids()
    if ids:
        out["trace_id"], out["span_id"] = ids
    return out


class JsonFormatter(logging.Formatter):
    """One JSON object per record, redacted."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        doc: dict[str, Any] = {
            "ts": f"{ts}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update(_context_fields())
        for k, v in record.__dict__.items():
            if k not in _RESERVED and not k.startswith("_"):
                doc[k] = v
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(doc, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    """A readable line (for people at a terminal), redacted."""

    def format(self, record: logging.LogRecord) -> str:
        ctx = _context_fields()
        extras = {k: v for k, v in record.__dict__.items() if k not in _RESERVED and not k.startswith("_")}
        ts = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = f"{ts} {record.levelname:<7} {ctx['service']:<9} {record.name}: {record.getMessage()}"
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        if "trace_id" in ctx:
            line += f" trace_id={ctx['trace_id']}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


_handler: logging.Handler | None = None


def setup_logging(
    settings: Settings, *, stream: TextIO | None = None, json_logs: bool | None = None
) -> logging.Handler:
    """Route all logging through one redacting handler (idempotent: replaces the previous one)."""
    global _handler
    register_settings_secrets(settings)
    cfg = settings.telemetry
    use_json = cfg.json_logs if json_logs is None else json_logs
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    for h in list(root.handlers):
        # redact whatever else is already attached too (e.g. pytest's capture handlers keep theirs)
        if h.formatter is None or not isinstance(h.formatter, JsonFormatter | TextFormatter):
            h.addFilter(_RedactFilter())
    root.addHandler(handler)
    root.setLevel(cfg.log_level.upper())
    for noisy in ("asyncio", "grpc", "urllib3", "databento"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    logging.captureWarnings(True)
    _handler = handler
    return handler


class _RedactFilter(logging.Filter):
    """Redacts the message of records reaching handlers we do not format."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        red = redact(msg)
        if red != msg:
            record.msg, record.args = red, None
        return True
