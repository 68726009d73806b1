"""Calibrated confidence: P(target before stop or horizon) from the model probability and the evidence.

A logistic model ``P = sigmoid(b0 + b1 * logit(p_model) + b2 * evidence)`` fitted on backtest
outcomes (1 = TARGET, 0 = any other exit), walk-forward only: each fold is predicted by a model
fitted on the folds before it, so the reported Brier score, ECE and reliability table are out of
sample. The fitted coefficients ship as a small versioned JSON artifact (``calibration.json``
beside this module) with the data window they came from, and are loaded at start.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from aiots.core.stats import Calibration, calibration

DEFAULT_FILE = Path(__file__).with_name("calibration.json")
ARTIFACT_VERSION = 1
P_CLIP = 1e-4  # logit(p) is taken of p clipped to [P_CLIP, 1 - P_CLIP]
L2 = 1e-3  # ridge penalty on the slopes (keeps a fit on few, separable outcomes finite)
MIN_FIT_OUTCOMES = 30


def _logit(p: npt.ArrayLike) -> npt.NDArray[np.float64]:
    q = np.clip(np.asarray(p, dtype=np.float64), P_CLIP, 1.0 - P_CLIP)
    return np.asarray(np.log(q / (1.0 - q)), dtype=np.float64)


def _design(p_model: npt.ArrayLike, evidence: npt.ArrayLike) -> npt.NDArray[np.float64]:
    pm = np.nan_to_num(np.asarray(p_model, dtype=np.float64), nan=0.5)
    ev = np.nan_to_num(np.asarray(evidence, dtype=np.float64), nan=0.0)
    return np.column_stack([np.ones(pm.size), _logit(pm), ev])


@dataclass(frozen=True)
class Calibrator:
    """The fitted logistic map; ``identity`` (no artifact) returns the model probability unchanged."""

    intercept: float = 0.0
    logit_p_model: float = 1.0
    evidence: float = 0.0
    n: int = 0
    window_start: str = ""
    window_end: str = ""
    oos: dict[str, float] = field(default_factory=dict)
    version: int = ARTIFACT_VERSION

    @property
    def identity(self) -> bool:
        return self.n == 0

    def __call__(self, p_model: float, evidence: float) -> float:
        if self.identity:
            return float(min(1.0, max(0.0, p_model))) if math.isfinite(p_model) else 0.0
        x = _design([p_model], [evidence])[0]
        z = self.intercept * x[0] + self.logit_p_model * x[1] + self.evidence * x[2]
        return float(1.0 / (1.0 + math.exp(-z)))

    def predict(self, p_model: npt.ArrayLike, evidence: npt.ArrayLike) -> npt.NDArray[np.float64]:
        if self.identity:
            return np.clip(np.nan_to_num(np.asarray(p_model, dtype=np.float64)), 0.0, 1.0)
        z = _design(p_model, evidence) @ np.array([self.intercept, self.logit_p_model, self.evidence])
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Calibrator:
        raw: dict[str, Any] = json.loads(text)
        if raw.get("version") != ARTIFACT_VERSION:
            got = raw.get("version")
            raise ValueError(f"calibration artifact version {got!r}; this build reads {ARTIFACT_VERSION}")
        return cls(**raw)


def load_calibrator(path: Path | None = None) -> Calibrator:
    """The artifact at ``path`` (the packaged one when None); identity when the file is absent."""
    p = path or DEFAULT_FILE
    if not p.is_file():
        return Calibrator()
    return Calibrator.from_json(p.read_text())


def fit(
    p_model: npt.ArrayLike, evidence: npt.ArrayLike, hit: npt.ArrayLike, *, window: tuple[str, str] = ("", "")
) -> Calibrator:
    """Maximum-likelihood logistic fit (scipy BFGS, small ridge on the slopes); identity on too few outcomes."""
    from scipy.optimize import minimize

    x = _design(p_model, evidence)
    y = np.asarray(hit, dtype=np.float64)
    if y.size < MIN_FIT_OUTCOMES or y.min() == y.max():
        return Calibrator()

    def loss(b: npt.NDArray[np.float64]) -> tuple[float, npt.NDArray[np.float64]]:
        z = x @ b
        p = 1.0 / (1.0 + np.exp(-z))
        nll = float(np.sum(np.logaddexp(0.0, z) - y * z)) + L2 * float(b[1:] @ b[1:])
        grad = x.T @ (p - y) + 2 * L2 * np.concatenate([[0.0], b[1:]])
        return nll, grad

    res = minimize(loss, np.array([0.0, 1.0, 0.0]), jac=True, method="BFGS")
    b = res.x
    return Calibrator(float(b[0]), float(b[1]), float(b[2]), int(y.size), window[0], window[1])


@dataclass(frozen=True)
class WalkForward:
    """Out-of-sample predictions of a walk-forward fit and their calibration; ``final`` is fitted on all."""

    predicted: npt.NDArray[np.float64]
    outcome: npt.NDArray[np.float64]
    raw: npt.NDArray[np.float64]
    calibration: Calibration
    raw_calibration: Calibration
    final: Calibrator


def walk_forward(
    times: Sequence[str], p_model: npt.ArrayLike, evidence: npt.ArrayLike, hit: npt.ArrayLike, folds: int = 5
) -> WalkForward:
    """Sort by time, cut into ``folds`` consecutive folds, predict fold k from a fit on folds < k.

    The first fold is never predicted (nothing before it). ``raw`` holds the uncalibrated model
    probabilities of the same out-of-sample outcomes, for comparison.
    """
    order = np.argsort(np.asarray(times), kind="stable")
    pm = np.asarray(p_model, dtype=np.float64)[order]
    ev = np.asarray(evidence, dtype=np.float64)[order]
    y = np.asarray(hit, dtype=np.float64)[order]
    ts = [times[i] for i in order]
    n = y.size
    edges = np.linspace(0, n, folds + 1).astype(int)
    preds, outs, raws = [], [], []
    for k in range(1, folds):
        lo, hi = edges[k], edges[k + 1]
        if hi <= lo:
            continue
        model = fit(pm[:lo], ev[:lo], y[:lo], window=(ts[0], ts[lo - 1]) if lo else ("", ""))
        preds.append(model.predict(pm[lo:hi], ev[lo:hi]))
        outs.append(y[lo:hi])
        raws.append(np.clip(np.nan_to_num(pm[lo:hi]), 0, 1))
    pred = np.concatenate(preds) if preds else np.empty(0)
    out = np.concatenate(outs) if outs else np.empty(0)
    raw = np.concatenate(raws) if raws else np.empty(0)
    final = fit(pm, ev, y, window=(ts[0], ts[-1]) if ts else ("", ""))
    cal = calibration(pred, out)
    if not final.identity:
        final = Calibrator(
            final.intercept, final.logit_p_model, final.evidence, final.n, final.window_start, final.window_end,
            {"brier": cal.brier, "ece": cal.ece, "base_rate": cal.base_rate, "brier_base_rate": cal.brier_base_rate,
             "n_oos": float(out.size)},
        )  # fmt: skip
    return WalkForward(pred, out, raw, cal, calibration(raw, out), final)
