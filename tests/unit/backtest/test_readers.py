"""Each reader on a real file (counts from PROVENANCE.md, the independent oracle) and on a
corrupted copy in tmp_path (a clear error naming the file, row and column; nothing half-loaded)."""

from __future__ import annotations

import datetime as dt
import gzip
import math
from pathlib import Path

import numpy as np
import pytest

from aiots.core.conventions import ny_ns
from aiots.services.backtest import readers as r
from aiots.services.backtest.readers import DataFileError

SPY = "ohlcv/SPY_1m_2024-02-20_2024-05-17.csv"
GOOG_Q23 = "options-intraday/lean_GOOG_options_1m_quotes_2015-12-23.csv"
GOOG_Q24 = "options-intraday/lean_GOOG_options_1m_quotes_2015-12-24.csv.gz"
SPX_Q = "options-intraday/lean_SPX-SPXW_options_1m_quotes_2021-01-04_2023-06-26.csv"
GOOG_T = "options-intraday/lean_GOOG_options_1m_trades_2015-12-23_2015-12-28.csv"
AAPL_CH = "options/yfinance_AAPL_chain-snapshots_2025-11-24_2025-12-05.csv.gz"
NVDA_DBN = "dbn/databento-python/XNAS.ITCH/test_data.ohlcv-1m.dbn.zst"


def corrupt_line(src: Path, dst: Path, line: int, col: str, value: str) -> None:
    """Copy ``src`` (plain CSV) to ``dst`` with ``col`` on 1-based file line ``line`` set to ``value``."""
    lines = src.read_text().splitlines()
    head = lines[0].split(",")
    cells = lines[line - 1].split(",")
    cells[head.index(col)] = value
    lines[line - 1] = ",".join(cells)
    dst.write_text("\n".join(lines) + "\n")


# --- OHLCV ------------------------------------------------------------------------------------
def test_ohlcv_real_file(shared_data: Path) -> None:
    bars = r.read_bars(shared_data / SPY)
    s = bars["SPY"]
    assert len(s) == 49720  # PROVENANCE 7d
    assert s.ts_ns[0] == ny_ns(dt.date(2024, 2, 20), dt.time(4, 0))  # 04:00 ET naive -> UTC
    assert s.close[0] == 498.39 and s.interval_ns == 60_000_000_000
    assert (np.diff(s.ts_ns) > 0).all()


def test_daily_bars_close_at_16(shared_data: Path) -> None:
    s = r.read_bars(shared_data / "ohlcv/AAPL_1d_2015-02-17_2017-02-16.csv")["AAPL"]
    assert len(s) == 506
    assert s.ts_ns[0] + s.interval_ns == ny_ns(dt.date(2015, 2, 17), dt.time(16, 0))


@pytest.mark.parametrize(
    ("col", "value", "words"),
    [
        ("close", "abc", "not a finite number"),
        ("high", "1.0", "low"),
        ("datetime", "2024-02-20 25:00:00", "not a time"),
    ],
)
def test_ohlcv_corrupted_copy(shared_data: Path, tmp_path: Path, col: str, value: str, words: str) -> None:
    bad = tmp_path / "spy.csv"
    corrupt_line(shared_data / SPY, bad, 1001, col, value)
    with pytest.raises(DataFileError) as e:
        r.read_bars(bad)
    assert e.value.path == str(bad) and e.value.row == 1000 and e.value.column == col
    assert words in str(e.value) and "line 1001" in str(e.value)


def test_ohlcv_duplicate_time_is_refused(shared_data: Path, tmp_path: Path) -> None:
    src = (shared_data / SPY).read_text().splitlines()
    bad = tmp_path / "dup.csv"
    bad.write_text("\n".join([*src[:11], src[10], *src[11:20]]) + "\n")  # line 12 repeats line 11
    with pytest.raises(DataFileError) as e:
        r.read_bars(bad)
    assert e.value.row == 11 and e.value.column == "datetime" and "duplicate or out of order" in str(e.value)


def test_missing_column_and_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    p.write_text("datetime,symbol,open,high,low,close\n2024-01-02 09:30:00,SPY,1,1,1,1\n")
    with pytest.raises(DataFileError, match="volume"):
        r.read_bars(p)
    p.write_text("")
    with pytest.raises(DataFileError, match="empty"):
        r.read_bars(p)


# --- option quote bars ------------------------------------------------------------------------
def test_option_quotes_real_files_keep_missing_sides_as_nan(shared_data: Path) -> None:
    q23 = r.read_option_quote_bars(shared_data / GOOG_Q23)
    assert len(q23) == 28932
    assert int(np.isnan(q23.bid).sum()) == 8749 and int(np.isnan(q23.ask).sum()) == 2970  # PROVENANCE 7a
    q24 = r.read_option_quote_bars(shared_data / GOOG_Q24)  # gzip
    assert len(q24) == 275552
    assert int(np.isnan(q24.bid).sum()) == 67766 and int(np.isnan(q24.ask).sum()) == 45541
    spx = r.read_option_quote_bars(shared_data / SPX_Q)
    assert len(spx) == 28008 and int(np.isnan(spx.bid).sum()) == 829
    assert set(spx.underlying.tolist()) == {"SPX"}
    # stamped at the bar end: the first GOOG bar starts 09:30 ET, so it is known at 09:31
    assert q23.ts_ns.min() == ny_ns(dt.date(2015, 12, 23), dt.time(9, 31))


def test_option_quotes_corrupted_copy(shared_data: Path, tmp_path: Path) -> None:
    bad = tmp_path / "q.csv"
    corrupt_line(shared_data / GOOG_Q23, bad, 501, "option_symbol", "GOOG 1512X4C00600000")
    with pytest.raises(DataFileError) as e:
        r.read_option_quote_bars(bad)
    assert e.value.row == 500 and e.value.column == "option_symbol"
    corrupt_line(shared_data / GOOG_Q23, bad, 77, "ask_close", "1.2.3")
    with pytest.raises(DataFileError) as e:
        r.read_option_quote_bars(bad)
    assert e.value.row == 76 and e.value.column == "ask_close"


def test_truncated_gzip_is_refused(shared_data: Path, tmp_path: Path) -> None:
    raw = (shared_data / GOOG_Q24).read_bytes()
    bad = tmp_path / "cut.csv.gz"
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataFileError) as e:
        r.read_option_quote_bars(bad)
    assert str(bad) in str(e.value)
    # and a gzip whose text is fine reads exactly like the plain file
    ok = tmp_path / "ok.csv.gz"
    ok.write_bytes(gzip.compress((shared_data / GOOG_Q23).read_bytes()))
    assert len(r.read_option_quote_bars(ok)) == 28932


def test_option_trade_bars(shared_data: Path, tmp_path: Path) -> None:
    t = r.read_option_trade_bars(shared_data / GOOG_T)
    assert t.ts_ns.size == 1541
    bad = tmp_path / "t.csv"
    corrupt_line(shared_data / GOOG_T, bad, 10, "low", "-1")
    with pytest.raises(DataFileError) as e:
        r.read_option_trade_bars(bad)
    assert e.value.row == 9 and e.value.column == "low"


# --- chains -----------------------------------------------------------------------------------
def test_chain_snapshots_real_and_corrupted(shared_data: Path, tmp_path: Path) -> None:
    c = r.read_chains(shared_data / AAPL_CH)
    assert len(c.frame) == 37306 and c.frame["ts_ns"].nunique() == 18  # PROVENANCE 7c
    plain = tmp_path / "spxw.csv"
    corrupt_line(shared_data / "options/SPXW_options_eod_2018-01-02_2018-02-28.csv", plain, 3, "option_type", "X")
    with pytest.raises(DataFileError) as e:
        r.read_chains(plain)
    assert e.value.row == 2 and e.value.column == "option_type"


# --- DBN --------------------------------------------------------------------------------------
def test_dbn_bars_real_and_corrupted(shared_data: Path, tmp_path: Path) -> None:
    bars = r.read_any_bars(shared_data / NVDA_DBN)
    s = bars["NVDA"]
    assert len(s) == 4  # PROVENANCE 1: 4 records, 09:05..09:10 UTC
    assert s.ts_ns[0] == int(dt.datetime(2020, 12, 28, 9, 5, tzinfo=dt.UTC).timestamp()) * 10**9
    assert s.ts_ns[-1] == int(dt.datetime(2020, 12, 28, 9, 10, tzinfo=dt.UTC).timestamp()) * 10**9
    assert all(math.isfinite(x) for x in s.close)
    bad = tmp_path / "bad.dbn"
    bad.write_bytes(b"DBN\x03" + b"\x00" * 7)
    with pytest.raises(DataFileError) as e:
        r.read_any_bars(bad)
    assert str(bad) in str(e.value)


def test_dbn_option_quotes_match_the_raw_records(shared_data: Path, tmp_path: Path) -> None:
    """OPRA tbbo through our reader vs the raw DBN records decoded with databento_dbn (fixed-point 1e-9)."""
    import databento_dbn
    import zstandard

    path = shared_data / "dbn/databento-python/OPRA.PILLAR/test_data.tbbo.dbn.zst"
    raw = zstandard.ZstdDecompressor().stream_reader(path.open("rb")).read()
    dec = databento_dbn.DBNDecoder()
    dec.write(raw)
    recs = [x for x in dec.decode() if hasattr(x, "levels")]
    q = r.read_any_option_quotes(path)
    assert len(q) == len(recs) == 4
    assert q.ts_ns.tolist() == [x.ts_recv for x in recs]
    assert q.bid.tolist() == pytest.approx([x.levels[0].bid_px / 1e9 for x in recs])
    assert q.ask.tolist() == pytest.approx([x.levels[0].ask_px / 1e9 for x in recs])
    assert set(q.occ.tolist()) == {"AAPL  250221C00250000"} and set(q.underlying.tolist()) == {"AAPL"}
    bad = tmp_path / "cut.dbn.zst"
    bad.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DataFileError) as e:
        r.read_any_option_quotes(bad)
    assert str(bad) in str(e.value)
    with pytest.raises(DataFileError, match="holds no quotes"):
        r.read_any_option_quotes(shared_data / NVDA_DBN)
