"""The backtest refits the confidence calibration walk-forward on its own trades, out of sample,
never pooling real-quote and modelled trades, and refuses to fit on too few."""

from __future__ import annotations

import numpy as np
import pytest

from aiots.services.backtest.calibration import refit_calibration


def trades(n: int, kind: str, seed: int = 1) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p = float(rng.uniform(0.2, 0.8))
        ev = float(rng.uniform(0, 1))
        truth = 1 / (1 + np.exp(-(-1.5 + 3.0 * ev)))  # the evidence carries the edge, p_model none
        out.append(
            {
                "created_at": f"2024-03-{1 + i // 400:02d}T10:{i // 60 % 60:02d}:{i % 60:02d}-05:00",
                "priced_from": kind,
                "p_model": p,
                "evidence": ev,
                "exit_reason": "TARGET" if rng.uniform() < truth else "STOP",
            }
        )
    return out


def test_refit_is_out_of_sample_and_writes_an_artifact() -> None:
    report = {"trades": trades(2_000, "modelled")}
    section, art = refit_calibration(report)
    assert section["priced_from"] == "modelled" and section["n"] == 2_000 and section["n_oos"] == 1_600
    assert section["brier"] < section["brier_base_rate"] < section["raw_brier"]
    assert art is not None and art.evidence == pytest.approx(3.0, abs=0.5) and art.n == 2_000
    assert art.oos["n_oos"] == 1_600 and art.window_start < art.window_end


def test_quote_trades_are_never_pooled_with_modelled_ones() -> None:
    report = {"trades": trades(40, "quotes", seed=2) + trades(2_000, "modelled")}
    section, _ = refit_calibration(report)
    assert section["priced_from"] == "quotes" and section["n"] == 40


def test_too_few_trades_write_nothing() -> None:
    section, art = refit_calibration({"trades": trades(10, "modelled")})
    assert art is None and "no artifact" in section["note"]


def test_the_refit_rebuilds_the_context_the_live_selector_hands_the_calibrator() -> None:
    """The inputs fitted on (from a backtest trade row) are the inputs used live (from the selector)."""
    from dataclasses import dataclass

    from aiots.core.conventions import NS_PER_MIN, rfc3339
    from aiots.services.backtest.calibration import context_of
    from aiots.services.signals.calibration import Calibrator, Context
    from aiots.services.signals.config import SignalsConfig
    from aiots.services.signals.models import Direction
    from aiots.services.signals.selection import ContractSelector
    from tests.unit.signals.test_selection import NOW, _chain, _idea

    seen: list[tuple[float, Context | None]] = []

    @dataclass(frozen=True)
    class Recording(Calibrator):
        def __call__(self, p_model: float, evidence: float, context: Context | None = None) -> float:
            seen.append((p_model, context))
            return p_model

    end = NOW + 45 * NS_PER_MIN
    sel = ContractSelector(calibrator=Recording()).select(
        _idea(Direction.BULLISH, 3.0), _chain(100.0, NOW), NOW, SignalsConfig(), horizon_end_ns=end
    )
    assert sel is not None
    live = next(c for p, c in seen if p == sel.p_model)
    row = {
        "strategy": "momentum_breakout",
        "bid_at_entry": sel.quote.bid,
        "ask_at_entry": sel.quote.ask,
        "signal_entry_mid": sel.entry,
        "target_price": sel.target,
        "stop_price": sel.stop,
        "created_at": rfc3339(NOW),
        "horizon_at": rfc3339(end),
    }
    rebuilt = context_of(row)
    assert live is not None and rebuilt.strategy == live.strategy == "momentum_breakout"
    assert rebuilt.spread_frac == pytest.approx(live.spread_frac, rel=1e-12)
    assert rebuilt.reward_risk == pytest.approx(live.reward_risk, rel=1e-9) == pytest.approx(sel.reward_risk)
    assert rebuilt.horizon_minutes == pytest.approx(live.horizon_minutes) == pytest.approx(45.0)
