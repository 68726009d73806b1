"""Every idea the engine selects for is counted once, by strategy and outcome (``signal`` or the gate
that refused it, as a bounded label): what ``aiots_signal_candidates_total`` exports."""

from __future__ import annotations

from dataclasses import replace

import pytest

from aiots.services.signals.calibration import Calibrator
from aiots.services.signals.config import SignalsConfig
from aiots.services.signals.engine import CANDIDATE_OUTCOMES, SignalEngine, candidate_outcome
from aiots.services.signals.models import Bar, Direction
from tests.unit.signals.test_selection import NOW, _chain, _idea


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        ("IV rank 97 above 80: premium too rich to buy", "iv rank"),
        ("event risk: front ATM IV 0.69 is 2.30x the next expiry's 0.30 (3.0 days out)", "event risk"),
        ("no fresh, liquid contract in the DTE, spread and size limits", "no fresh liquid contract"),
        ("no trading time left in the horizon", "no trading time"),
        ("no contract near the delta band", "delta band"),
        ("no implied volatility solves", "no iv"),
        ("no contract pays its costs (spread, fees, stop distance) at positive expected value", "ev not positive"),
        ("something new", "other"),
    ],
)
def test_skip_reasons_map_to_bounded_labels(reason: str, label: str) -> None:
    assert candidate_outcome(reason) == label
    assert len({lbl for _, lbl in CANDIDATE_OUTCOMES}) == len(CANDIDATE_OUTCOMES)


def test_each_idea_is_counted_once_with_its_outcome() -> None:
    engine = SignalEngine(SignalsConfig(), calibrator=Calibrator())  # the identity: the selector's own tests
    seen: list[tuple[str, str]] = []
    engine.on_candidate = lambda strategy, outcome: seen.append((strategy, outcome))
    for q in _chain(100.0, NOW):
        engine.on_option_quote(q)
    bar = Bar("AAPL", NOW - 60 * 10**9, 100.0, 100.2, 99.9, 100.0, 1e5)
    good = _idea(Direction.BULLISH, 3.0)
    unpayable = replace(_idea(Direction.BULLISH, 0.01), strategy="mean_reversion")
    new = engine.select(bar, [good, unpayable])
    assert len(new) == 1, (seen, engine.skipped)
    assert seen == [("momentum_breakout", "signal"), ("mean_reversion", "ev not positive")]
    seen.clear()
    engine.select(replace(bar, symbol="MSFT"), [replace(good, symbol="MSFT")])  # no MSFT chain at all
    assert seen == [("momentum_breakout", "no fresh liquid contract")]
