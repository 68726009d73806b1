# ruff: noqa: E501
"""Write the provisioned Grafana dashboards (deploy/grafana/dashboards/*.json).

Run ``python deploy/grafana/generate.py`` after changing a panel; the JSON files are committed so
Grafana provisions them as they are. Every aiots_* metric used here is defined in
services/common/telemetry.py (tests/unit/deploy/test_deploy.py checks it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "prometheus"}


def panel(
    pid: int,
    title: str,
    exprs: list[tuple[str, str]],
    *,
    unit: str = "short",
    kind: str = "timeseries",
    x: int = 0,
    y: int = 0,
    w: int = 12,
    h: int = 8,
) -> dict[str, Any]:
    return {
        "id": pid,
        "type": kind,
        "title": title,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom"}} if kind == "timeseries" else {},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DS, "expr": e, "legendFormat": legend}
            for i, (e, legend) in enumerate(exprs)
        ],
    }


def dashboard(uid: str, title: str, panels: list[dict[str, Any]]) -> dict[str, Any]:
    for i, p in enumerate(panels):
        p["gridPos"]["x"] = (i % 2) * 12
        p["gridPos"]["y"] = (i // 2) * 8
    return {
        "uid": uid,
        "title": title,
        "tags": ["aiots"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "service",
                    "type": "query",
                    "datasource": DS,
                    "query": "label_values(aiots_rpc_duration_seconds_count, service)",
                    "includeAll": True,
                    "multi": True,
                    "current": {"text": "All", "value": "$__all"},
                }
            ]
        },
        "panels": panels,
    }


SVC = 'service=~"$service"'

SYSTEM = dashboard(
    "aiots-system",
    "AI-OTS / System",
    [
        panel(1, "Services up", [('up{job=~"aiots-.*"}', "{{job}}")], kind="stat"),
        panel(
            2,
            "RPC rate by method",
            [(f"sum by (method) (rate(aiots_rpc_duration_seconds_count{{{SVC}}}[5m]))", "{{method}}")],
            unit="reqps",
        ),
        panel(
            3,
            "RPC p99 latency",
            [
                (
                    f"histogram_quantile(0.99, sum by (method, le) (rate(aiots_rpc_duration_seconds_bucket{{{SVC}}}[5m])))",
                    "{{method}}",
                )
            ],
            unit="s",
        ),
        panel(
            4,
            "RPC errors by code",
            [
                (
                    f'sum by (service, code) (rate(aiots_rpc_duration_seconds_count{{{SVC},code!="OK"}}[5m]))',
                    "{{service}} {{code}}",
                )
            ],
            unit="reqps",
        ),
        panel(5, "In-flight RPCs", [(f"sum by (service) (aiots_rpc_in_flight{{{SVC}}})", "{{service}}")]),
        panel(
            6,
            "Database call p95",
            [
                (
                    f"histogram_quantile(0.95, sum by (operation, le) (rate(aiots_db_query_duration_seconds_bucket{{{SVC}}}[5m])))",
                    "{{operation}}",
                )
            ],
            unit="s",
        ),
        panel(
            7,
            "Database errors",
            [("sum by (service, operation) (rate(aiots_db_errors_total[5m]))", "{{service}} {{operation}}")],
            unit="ops",
        ),
        panel(
            8,
            "Redis command p95",
            [
                (
                    "histogram_quantile(0.95, sum by (command, le) (rate(aiots_redis_command_duration_seconds_bucket[5m])))",
                    "{{command}}",
                )
            ],
            unit="s",
        ),
        panel(
            9,
            "Client-side RPC p99",
            [
                (
                    "histogram_quantile(0.99, sum by (service, method, le) (rate(aiots_rpc_client_duration_seconds_bucket[5m])))",
                    "{{service}} -> {{method}}",
                )
            ],
            unit="s",
        ),
        panel(10, "Process CPU", [("rate(process_cpu_seconds_total[5m])", "{{job}}")], unit="percentunit"),
    ],
)

PIPELINE = dashboard(
    "aiots-pipeline",
    "AI-OTS / Data pipeline",
    [
        panel(
            1,
            "Ingest records/s",
            [("sum by (source, kind) (rate(aiots_ingest_records_total[1m]))", "{{source}} {{kind}}")],
            unit="ops",
        ),
        panel(2, "Ingest lag", [("max by (source) (aiots_ingest_lag_seconds)", "{{source}}")], unit="s"),
        panel(
            3, "Rows written/s", [("sum by (table) (rate(aiots_db_rows_written_total[1m]))", "{{table}}")], unit="ops"
        ),
        panel(4, "DB write failures", [("sum by (table) (increase(aiots_db_write_failures_total[5m]))", "{{table}}")]),
        panel(5, "Spill to disk", [("max(aiots_ingest_spill_bytes)", "spilled")], unit="bytes"),
        panel(
            6, "Queue fill", [("aiots_queue_depth / aiots_queue_capacity", "{{service}} {{queue}}")], unit="percentunit"
        ),
        panel(
            7, "Bus published/s", [("sum by (topic) (rate(aiots_bus_published_total[1m]))", "{{topic}}")], unit="ops"
        ),
        panel(
            8,
            "Bus consumed/s",
            [("sum by (topic, group) (rate(aiots_bus_consumed_total[1m]))", "{{group}} {{topic}}")],
            unit="ops",
        ),
        panel(9, "Bus backlog (pending)", [("sum by (topic, group) (aiots_bus_pending)", "{{group}} {{topic}}")]),
        panel(10, "Bus lag", [("max by (topic, group) (aiots_bus_lag_seconds)", "{{group}} {{topic}}")], unit="s"),
        panel(
            11,
            "Cache hit ratio",
            [
                (
                    'sum by (service) (rate(aiots_cache_requests_total{result="hit"}[5m])) '
                    "/ sum by (service) (rate(aiots_cache_requests_total[5m]))",
                    "{{service}}",
                )
            ],
            unit="percentunit",
        ),
    ],
)

SIGNALS = dashboard(
    "aiots-signals",
    "AI-OTS / Signals",
    [
        panel(
            1,
            "Signals created per hour by strategy",
            [('sum by (strategy) (increase(aiots_signals_total{status="OPEN"}[1h]))', "{{strategy}}")],
        ),
        panel(
            2,
            "Status changes per hour",
            [('sum by (status) (increase(aiots_signals_total{status!="OPEN"}[1h]))', "{{status}}")],
        ),
        panel(3, "Open signals", [("sum by (strategy) (aiots_signals_open)", "{{strategy}}")]),
        panel(4, "Open subscribers", [("sum by (service, stream) (aiots_subscribers)", "{{service}} {{stream}}")]),
        panel(
            5,
            "Subscriber drops",
            [("sum by (stream, reason) (increase(aiots_subscriber_drops_total[10m]))", "{{stream}} {{reason}}")],
        ),
        panel(
            6,
            "SubscribeSignals streams ended by code",
            [
                (
                    'sum by (code) (rate(aiots_rpc_duration_seconds_count{method="/aiots.v1.SignalService/SubscribeSignals"}[5m]))',
                    "{{code}}",
                )
            ],
            unit="ops",
        ),
    ],
)

BUSINESS = dashboard(
    "aiots-business",
    "AI-OTS / Business",
    [
        panel(
            1,
            "Hit rate by strategy (24h)",
            [
                (
                    'sum by (strategy) (increase(aiots_signals_total{status="TARGET_HIT"}[24h])) / '
                    'sum by (strategy) (increase(aiots_signals_total{status=~"TARGET_HIT|STOPPED|EXPIRED"}[24h]))',
                    "{{strategy}}",
                )
            ],
            unit="percentunit",
            kind="bargauge",
        ),
        panel(
            2,
            "Median P&L on premium by strategy",
            [
                (
                    "100 * (histogram_quantile(0.5, sum by (strategy, le) (rate(aiots_signal_return_ratio_bucket[24h]))) - 1)",
                    "{{strategy}}",
                )
            ],
            unit="percent",
        ),
        panel(
            3, "Signals per day", [('sum(increase(aiots_signals_total{status="OPEN"}[24h]))', "signals")], kind="stat"
        ),
        panel(
            4,
            "Closed signals by outcome (24h)",
            [('sum by (status) (increase(aiots_signals_total{status!="OPEN"}[24h]))', "{{status}}")],
            kind="piechart",
        ),
        panel(
            5,
            "API calls per role-protected admin action",
            [("sum by (action, outcome) (increase(aiots_audit_events_total[24h]))", "{{action}} {{outcome}}")],
        ),
        panel(
            6,
            "Market data processed per day",
            [("sum by (kind) (increase(aiots_ingest_records_total[24h]))", "{{kind}}")],
            kind="stat",
        ),
    ],
)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, d in (("system", SYSTEM), ("pipeline", PIPELINE), ("signals", SIGNALS), ("business", BUSINESS)):
        (OUT / f"{name}.json").write_text(json.dumps(d, indent=2) + "\n")


if __name__ == "__main__":
    main()
