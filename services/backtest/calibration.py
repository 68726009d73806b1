"""Refit the signals' confidence calibration on a backtest's closed trades, walk-forward.

The trades are ordered by signal time and cut into consecutive folds; each fold is predicted by a
logistic fit on the folds before it (:func:`aiots.services.signals.calibration.walk_forward`), so
the Brier score, ECE and reliability table reported here are out of sample. The artifact is then
fitted on every trade and carries that out-of-sample result and its data window. Trades priced from
real quotes and from modelled premiums are never pooled: the fit uses the report's primary kind.
"""

from __future__ import annotations

import math
from typing import Any

from aiots.core.stats import Calibration
from aiots.services.signals.calibration import MIN_FIT_OUTCOMES, Calibrator, walk_forward

FOLDS = 5


def _num(x: float) -> float | None:
    return round(x, 6) if math.isfinite(x) else None


def _table(c: Calibration) -> dict[str, Any]:
    return {
        "brier": _num(c.brier),
        "brier_base_rate": _num(c.brier_base_rate),
        "ece": _num(c.ece),
        "base_rate": _num(c.base_rate),
        "bins": [
            {"lo": b.lo, "hi": b.hi, "predicted": _num(b.predicted), "realised": _num(b.realised), "n": b.count}
            for b in c.bins
        ],
    }


def refit_calibration(report: dict[str, Any]) -> tuple[dict[str, Any], Calibrator | None]:
    """(the report section, the artifact or None when there are too few trades to fit)."""
    kinds = [k for k in ("quotes", "modelled") if any(t["priced_from"] == k for t in report["trades"])]
    kind = kinds[0] if kinds else report.get("calibration", {}).get("priced_from", "modelled")
    trades = [
        t
        for t in report["trades"]
        if t["priced_from"] == kind and t.get("p_model") is not None and t.get("exit_reason") is not None
    ]
    out: dict[str, Any] = {"priced_from": kind, "n": len(trades), "folds": FOLDS}
    if len(trades) < MIN_FIT_OUTCOMES:
        out["note"] = f"only {len(trades)} closed trades (a fit needs {MIN_FIT_OUTCOMES}): no artifact written"
        return out, None
    times = [t["created_at"] for t in trades]
    hits = [1.0 if t["exit_reason"] == "TARGET" else 0.0 for t in trades]
    wf = walk_forward(times, [t["p_model"] for t in trades], [t.get("evidence") or 0.0 for t in trades], hits, FOLDS)
    out.update(_table(wf.calibration))
    out["n_oos"] = int(wf.outcome.size)
    out["raw_brier"] = _num(wf.raw_calibration.brier)
    out["raw_ece"] = _num(wf.raw_calibration.ece)
    skill = wf.calibration.brier < wf.calibration.brier_base_rate
    out["note"] = (
        "out-of-sample Brier below the base rate: the confidence has skill"
        if skill
        else "out-of-sample Brier not below the base rate: no skill shown on this sample"
    )
    out["artifact"] = {
        "intercept": wf.final.intercept,
        "logit_p_model": wf.final.logit_p_model,
        "evidence": wf.final.evidence,
        "window": [wf.final.window_start, wf.final.window_end],
    }
    return out, (None if wf.final.identity else wf.final)
