"""``aiots backtest`` end to end on a small real file: the JSON report's shape and RFC 3339 times,
the self-contained HTML, and one clear error line (file, row, column) on a corrupted copy."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from click.testing import CliRunner

from aiots.services.cli.backtest import cli

NVDA = "ohlcv/NVDA_1m_2024-03-01_2024-03-14.csv"


def test_report_shape(shared_data: Path, tmp_path: Path) -> None:
    out, html = tmp_path / "r.json", tmp_path / "r.html"
    res = CliRunner().invoke(
        cli,
        ["--bars", str(shared_data / NVDA), "--to", "2024-03-08", "--json", str(out), "--report", str(html), "--quiet"],
    )
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())
    for key in ("summary", "by_strategy", "calibration", "null_model", "trades", "by_symbol", "data"):
        assert key in r
    assert {"brier", "ece", "bins"} <= set(r["calibration"])
    assert "expectancy_pct" in r["null_model"]
    for row in r["by_strategy"]:
        assert {"strategy", "n", "hit_rate", "hit_rate_ci", "expectancy_pct", "priced_from"} <= set(row)
    for t in r["trades"]:
        assert t["exit_reason"] in ("TARGET", "STOP", "HORIZON", "CLOSE", "EXPIRY")
        assert t["priced_from"] == "modelled"
        for k in ("created_at", "entry_time", "exit_time"):
            assert dt.datetime.fromisoformat(t[k]).utcoffset() is not None
        assert t["entry_price"] == t["ask_at_entry"]
    assert r["data"]["filters_skipped"] == ["min_open_interest", "min_volume"]
    page = html.read_text()
    assert (
        page.startswith("<!doctype html>")
        and "<svg" in page
        and "http" not in page.replace("http://www.w3.org/2000/svg", "")
    )


def test_bad_file_is_one_line_naming_file_row_and_column(shared_data: Path, tmp_path: Path) -> None:
    lines = (shared_data / NVDA).read_text().splitlines()
    cells = lines[5].split(",")
    cells[5] = "oops"  # the close of data row 5
    lines[5] = ",".join(cells)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines[:50]) + "\n")
    res = CliRunner().invoke(cli, ["--bars", str(bad), "--json", str(tmp_path / "x.json"), "--quiet"])
    assert res.exit_code == 1
    assert f"{bad}, row 5 (line 6), column 'close'" in res.output
    assert not (tmp_path / "x.json").exists()


def test_workers_give_the_same_report(shared_data: Path, tmp_path: Path) -> None:
    """Two symbols replayed in two processes: the same trades and summary as one process."""
    files = [str(shared_data / "ohlcv" / f"yf_{s}_1m_2026-03-12_2026-03-27.csv") for s in ("AAPL", "MSFT")]
    reports = []
    for n in (1, 2):
        out = tmp_path / f"w{n}.json"
        args = [a for f in files for a in ("--bars", f)]
        res = CliRunner().invoke(cli, [*args, "--to", "2026-03-18", "--workers", str(n), "--json", str(out), "--quiet"])
        assert res.exit_code == 0, res.output
        reports.append(json.loads(out.read_text()))
    one, two = reports
    assert one["trades"] == two["trades"] and one["summary"] == two["summary"]
    assert {t["symbol"] for t in one["trades"]} == {"AAPL", "MSFT"}  # both processes traded
