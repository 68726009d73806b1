"""Normalisation of the real DBN samples agrees with databento's own DBNStore.to_df (the oracle)."""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import databento as db
import databento_dbn as dbn
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiots.services.ingestion import normalize as nz

warnings.filterwarnings("ignore", module="databento")

DP = "dbn/databento-python"


def _both_paths(path: Path) -> tuple[nz.Batch, nz.Batch, db.DBNStore]:
    store = db.DBNStore.from_file(path)
    n1 = nz.Normalizer(nz.SOURCE_REPLAY)
    n1.load_metadata(store.metadata)
    rtype = int(next(iter(store)).rtype)
    arr_batch = n1.array(rtype, store.to_ndarray())
    n2 = nz.Normalizer(nz.SOURCE_REPLAY)
    n2.load_metadata(store.metadata)
    obj_batch = n2.records(iter(store))
    return arr_batch, obj_batch, store


def _sym(codes: np.ndarray) -> list[str]:
    return [nz.SYMBOLS.symbol(int(c)) for c in codes]


@pytest.mark.parametrize(
    "rel",
    [
        f"{DP}/XNAS.ITCH/test_data.trades.dbn.zst",
        f"{DP}/OPRA.PILLAR/test_data.trades.dbn.zst",
        f"{DP}/EQUS.MINI/test_data.trades.dbn.zst",
        "dbn/dbn-repo/test_data.trades.dbn",
    ],
)
def test_trades_match_to_df(shared_data: Path, rel: str) -> None:
    arr, obj, store = _both_paths(shared_data / rel)
    df = store.to_df()  # float prices, symbols mapped, index ts_recv
    t = arr.columns["trades"]
    np.testing.assert_allclose(t["price"], df["price"].to_numpy(), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(t["size"], df["size"].to_numpy())
    np.testing.assert_array_equal(t["ts_event"], df["ts_event"].astype("datetime64[ns, UTC]").array.asi8)
    assert _sym(t["sym"]) == list(df["symbol"])
    assert [chr(s) for s in t["side"]] == list(df["side"])
    np.testing.assert_array_equal(t["sequence"], df["sequence"].to_numpy())
    for k in t:  # object path == array path
        np.testing.assert_array_equal(obj.columns["trades"][k], t[k])


@pytest.mark.parametrize(
    "rel,table",
    [
        (f"{DP}/XNAS.ITCH/test_data.tbbo.dbn.zst", "quotes"),
        (f"{DP}/XNAS.ITCH/test_data.mbp-1.dbn.zst", "quotes"),
        (f"{DP}/OPRA.PILLAR/test_data.cbbo-1s.dbn.zst", "option_quotes"),
        (f"{DP}/OPRA.PILLAR/test_data.tbbo.dbn.zst", "option_quotes"),
    ],
)
def test_quotes_match_to_df(shared_data: Path, rel: str, table: str) -> None:
    arr, obj, store = _both_paths(shared_data / rel)
    df = store.to_df()
    q = arr.columns[table]
    np.testing.assert_allclose(q["bid"], df["bid_px_00"].to_numpy(dtype=float), atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(q["ask"], df["ask_px_00"].to_numpy(dtype=float), atol=1e-9, equal_nan=True)
    np.testing.assert_array_equal(q["bid_size"], df["bid_sz_00"].to_numpy())
    assert _sym(q["sym"]) == list(df["symbol"])
    if table == "option_quotes":
        assert set(_sym(q["und"])) == {"AAPL"}
    for k in q:
        np.testing.assert_array_equal(obj.columns[table][k], q[k])
    if "tbbo" in rel:  # tbbo records are trades too
        assert arr.count("trades") == len(df)


@pytest.mark.parametrize("schema,table", [("ohlcv-1s", "bars_1s"), ("ohlcv-1m", "bars_1m"), ("ohlcv-1d", "bars_1d")])
def test_bars_match_to_df(shared_data: Path, schema: str, table: str) -> None:
    arr, _, store = _both_paths(shared_data / f"{DP}/XNAS.ITCH/test_data.{schema}.dbn.zst")
    df = store.to_df()
    b = arr.columns[table]
    for col in ("open", "high", "low", "close", "volume"):
        np.testing.assert_allclose(b[col], df[col].to_numpy(dtype=float), atol=1e-9)
    np.testing.assert_array_equal(b["ts_event"], df.index.as_unit("ns").asi8)


def test_definition_and_statistics(shared_data: Path) -> None:
    arr, obj, store = _both_paths(shared_data / f"{DP}/OPRA.PILLAR/test_data.definition.dbn.zst")
    df = store.to_df()
    (row,) = arr.rows["instruments"]
    assert row[0] == "AAPL  250221C00250000" == df["raw_symbol"].iloc[0]
    assert row[1] == nz.KIND_OPTION and row[2] == "AAPL" and row[5] == "C"
    assert row[3] == pytest.approx(float(df["strike_price"].iloc[0]))
    assert row[4] == dt.date(2025, 2, 21) and row[6] == 100  # multiplier UNDEF -> 100
    assert obj.rows["instruments"] == arr.rows["instruments"]
    st_arr, _, st_store = _both_paths(shared_data / f"{DP}/OPRA.PILLAR/test_data.statistics.dbn.zst")
    sdf = st_store.to_df()
    oi = sdf[sdf["stat_type"] == int(dbn.StatType.OPEN_INTEREST)]
    got_oi = [r[3] for r in st_arr.rows["option_stats"] if r[3] is not None]
    assert got_oi == list(oi["quantity"].astype(float))


def test_mixed_live_capture_maps_in_stream_symbols(shared_data: Path) -> None:
    store = db.DBNStore.from_file(shared_data / f"{DP}/LIVE/test_data.live.dbn.zst")
    n = nz.Normalizer(nz.SOURCE_LIVE)
    b = n.records(iter(store))
    mbp = store.to_df(schema="mbp-1")
    oracle = pd.concat([store.to_df(schema="trades"), mbp[mbp["action"] == "T"]])  # mbp-1 trades count too
    got = sorted(zip(_sym(b.columns["trades"]["sym"]), b.columns["trades"]["price"].round(9), strict=True))
    assert got == sorted(zip(oracle["symbol"], oracle["price"].round(9), strict=True))
    ohl = store.to_df(schema="ohlcv-1m") if any(int(r.rtype) == 33 for r in store) else None
    if ohl is not None:
        np.testing.assert_allclose(b.columns["bars_1m"]["close"], ohl["close"].to_numpy(), atol=1e-9)


def _mk_trade(iid: int, ts: int, px: int, size: int = 1) -> dbn.TradeMsg:
    return dbn.TradeMsg(
        publisher_id=1,
        instrument_id=iid,
        ts_event=ts,
        price=px,
        size=size,
        action=dbn.Action.TRADE,
        side=dbn.Side.BID,
        depth=0,
        ts_recv=ts,
        sequence=ts,
    )


def _mbp1(iid: int, t: int, bid: float, ask: float, bid_sz: int = 5, ask_sz: int = 7) -> dbn.MBP1Msg:
    """An mbp-1 quote record (prices in dollars)."""
    return dbn.MBP1Msg(
        publisher_id=1,
        instrument_id=iid,
        ts_event=t,
        price=0,
        size=0,
        action=dbn.Action.ADD,
        side=dbn.Side.NONE,
        depth=0,
        ts_recv=t,
        levels=dbn.BidAskPair(bid_px=round(bid * 1e9), ask_px=round(ask * 1e9), bid_sz=bid_sz, ask_sz=ask_sz),
    )


def test_quality_events_crossed_zero_out_of_order_unmapped() -> None:
    n = nz.Normalizer(nz.SOURCE_LIVE)
    n.map_id(1, "QLTY")
    q = [
        _mbp1(1, t, b, a, bs, az)
        for t, b, a, bs, az in (
            (10, 101.0, 100.0, 1, 1),  # crossed
            (20, 100.0, 101.0, 0, 5),  # zero bid size
            (15, 100.0, 101.0, 3, 5),
        )
    ]  # out of order
    b = n.records([*q, _mk_trade(99, 30, 10**9), nz_undef := _mk_trade(1, 40, nz.UNDEF_PRICE)])
    assert n.counters.crossed == 1 and n.counters.zero_size == 1
    assert n.counters.out_of_order == 1 and n.counters.unmapped == 1
    kinds = sorted(r[1] for r in b.rows["data_quality_events"])
    assert kinds == ["crossed_quote", "out_of_order", "unmapped_instrument", "zero_size_quote"]
    assert b.count("quotes") == 3  # stored, but flagged
    assert np.isnan(b.columns["trades"]["price"][0]) and nz_undef.price == nz.UNDEF_PRICE


@given(st.text(max_size=30))
@settings(max_examples=200, deadline=None)
def test_parse_occ_never_crashes(s: str) -> None:
    r = nz.parse_occ(s)
    if r is not None:
        assert len(s) == 21 and r.right in ("C", "P")


def test_occ_roundtrip() -> None:
    s = nz.occ_symbol("AAPL", dt.date(2025, 2, 21), "C", 250.0)
    assert s == "AAPL  250221C00250000"
    inf = nz.parse_occ(s)
    assert inf is not None and inf.strike == 250.0 and inf.underlying == "AAPL" and inf.expiry == dt.date(2025, 2, 21)
    assert pd.Timestamp(inf.expiry).year == 2025


def test_a_mixed_batch_gives_each_option_quote_its_underlying_and_the_batchs_last_stock_mid() -> None:
    """Stock and option quotes of two underlyings interleaved in one batch, a contract quoted
    twice: each option row carries its own underlying, and the underlying's price is the mid of
    that stock's last quote in the batch (stocks are folded before options), NaN with none."""
    n = nz.Normalizer(nz.SOURCE_LIVE)
    for iid, sym in ((1, "MIXA"), (2, "MIXB"), (3, "MIXA  251219C00100000"), (4, "MIXB  251219P00050000")):
        n.map_id(iid, sym)
    n.map_id(5, "MIXC  251219C00010000")  # its underlying is never quoted
    recs = [
        _mbp1(3, 10, 1.0, 1.2),
        _mbp1(1, 11, 100.0, 100.2),
        _mbp1(4, 12, 2.0, 2.1),
        _mbp1(2, 13, 50.0, 50.4),
        _mbp1(3, 14, 1.1, 1.3),
        _mbp1(1, 15, 101.0, 101.4),
        _mbp1(5, 16, 0.5, 0.6),
        _mbp1(4, 17, 2.2, 2.3),
    ]
    b = n.records(recs)
    oq = b.columns["option_quotes"]
    c, p = "MIXA  251219C00100000", "MIXB  251219P00050000"
    assert _sym(oq["sym"]) == [c, p, c, "MIXC  251219C00010000", p]
    assert _sym(oq["und"]) == ["MIXA", "MIXB", "MIXA", "MIXC", "MIXB"]
    upx = oq["underlying_price"]
    assert upx[[0, 1, 2, 4]].tolist() == [101.2, 50.2, 101.2, 50.2] and np.isnan(upx[3])
    assert oq["ts_event"].tolist() == [10, 12, 14, 16, 17] and oq["bid"].tolist() == [1.0, 2.0, 1.1, 0.5, 2.2]
    assert _sym(b.columns["quotes"]["sym"]) == ["MIXA", "MIXB", "MIXA"]
