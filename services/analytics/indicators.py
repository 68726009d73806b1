"""Indicators by name over stored bars (GetIndicators), via the compiled core's registry.

A request names indicators (``sma``, ``rsi``, ``macd``, ...), an optional common ``period``
(applied to every indicator that has a ``period`` parameter) and per-indicator parameters
``"macd.fast=8"``. Inputs are taken from the bars by TA-Lib name (``real`` is the close);
``vwap`` anchors at each America/New_York session from the bar timestamps. Outputs are in TA-Lib
order; values are NaN while an indicator warms up. Intervals: 1m, 5m, 15m, 1h, 1d (5m and up are
rolled up from 1m bars by the storage layer, epoch-aligned).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from aiots.core import indicators as ind
from aiots.services.common.errors import InvalidArgument

F64 = npt.NDArray[np.float64]
INTERVALS: tuple[str, ...] = ("1m", "5m", "15m", "1h", "1d")
DEFAULT_INDICATORS: tuple[str, ...] = ("sma", "ema", "rsi", "macd", "bbands")
_INPUT_ALIASES = {"real": "close", "close": "close", "open": "open", "high": "high", "low": "low", "volume": "volume"}
#: output names where the core registry is not available (TA-Lib order)
_FALLBACK_OUTPUTS: dict[str, tuple[str, ...]] = {
    "bbands": ("upper", "middle", "lower"),
    "macd": ("macd", "signal", "hist"),
    "stoch": ("slowk", "slowd"),
    "stochrsi": ("fastk", "fastd"),
    "aroon": ("aroondown", "aroonup"),
}
_NOT_INDICATORS = {"ny_session_starts"}


@dataclass(frozen=True)
class Spec:
    """What the service needs to know about one core indicator."""

    name: str
    func: Callable[..., Any]
    inputs: tuple[str, ...]
    params: dict[str, float | int]
    outputs: tuple[str, ...]
    stream: Any = None


def _from_registry(name: str, spec: Any) -> Spec | None:
    func = getattr(spec, "func", None) or getattr(spec, "function", None) or getattr(ind, name, None)
    if func is None:
        return None
    inputs = tuple(getattr(spec, "inputs", ()))
    raw_params = getattr(spec, "params", {})
    params = dict(raw_params) if isinstance(raw_params, dict) else {str(p[0]): p[1] for p in raw_params}
    outputs = tuple(getattr(spec, "outputs", ())) or (name,)
    return Spec(name, func, inputs, params, outputs, getattr(spec, "stream", None))


def _from_signature(name: str, func: Callable[..., Any]) -> Spec:
    sig = inspect.signature(func)
    inputs = tuple(p.name for p in sig.parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD)
    params = {
        p.name: p.default
        for p in sig.parameters.values()
        if p.kind is p.KEYWORD_ONLY and isinstance(p.default, int | float) and not isinstance(p.default, bool)
    }
    return Spec(name, func, inputs, params, _FALLBACK_OUTPUTS.get(name, (name,)))


def _load_specs() -> dict[str, Spec]:
    registry = getattr(ind, "INDICATORS", None)
    specs: dict[str, Spec] = {}
    if isinstance(registry, dict) and registry:
        for name, spec in registry.items():
            s = _from_registry(str(name).lower(), spec)
            if s is not None:
                specs[s.name] = s
        return specs
    for name in dir(ind):
        obj = getattr(ind, name)
        if name.startswith("_") or name in _NOT_INDICATORS or not callable(obj) or isinstance(obj, type):
            continue
        if getattr(obj, "__module__", "") not in ("aiots.core.indicators", None):
            continue
        try:
            specs[name] = _from_signature(name, obj)
        except (TypeError, ValueError):
            continue
    return specs


SPECS: dict[str, Spec] = _load_specs()


@dataclass(frozen=True)
class IndicatorCall:
    """One indicator with its effective parameters."""

    name: str
    params: dict[str, float | int]


@dataclass(frozen=True)
class IndicatorQuery:
    """A validated GetIndicators request."""

    symbol: str
    interval: str
    calls: list[IndicatorCall]
    lookback: int
    start_ns: int | None
    end_ns: int | None
    include_series: bool
    period: int = 0

    def cache_key(self) -> str:
        """Stable text of everything that changes the answer."""
        parts = [self.symbol, self.interval, str(self.lookback), str(self.start_ns), str(self.end_ns)]
        parts += [f"{c.name}({','.join(f'{k}={v}' for k, v in sorted(c.params.items()))})" for c in self.calls]
        return "|".join([*parts, "series" if self.include_series else "latest"])


@dataclass
class IndicatorValues:
    """Result of one indicator: outputs in TA-Lib order, each a full series over the bars."""

    name: str
    params: dict[str, float | int]
    outputs: list[tuple[str, F64]] = field(default_factory=list)


def parse_names(raw: Sequence[str]) -> list[str]:
    """Split comma-separated names, lower-case, drop blanks, keep order, dedupe; validate."""
    names: list[str] = []
    for item in raw:
        for part in item.split(","):
            n = part.strip().lower()
            if n and n not in names:
                names.append(n)
    if not names:
        names = list(DEFAULT_INDICATORS)
    for n in names:
        if n not in SPECS:
            raise InvalidArgument("indicators", f"unknown indicator {n!r}; valid names: {', '.join(sorted(SPECS))}")
    return names


def _coerce(ind_name: str, pname: str, default: float | int, value: str) -> float | int:
    try:
        v = float(value)
    except ValueError:
        raise InvalidArgument("params", f"{ind_name}.{pname}={value!r} is not a number") from None
    if not np.isfinite(v):
        raise InvalidArgument("params", f"{ind_name}.{pname} must be finite, got {value}")
    if isinstance(default, int):
        if not v.is_integer():
            raise InvalidArgument("params", f"{ind_name}.{pname} must be an integer, got {value}")
        return int(v)
    return v


def build_calls(names: list[str], period: int, params: Sequence[str], max_period: int) -> list[IndicatorCall]:
    """Effective parameters per indicator: defaults, then ``period``, then ``name.param=value``."""
    if period < 0 or period > max_period:
        raise InvalidArgument("period", f"period must be in 1..{max_period} (0 for defaults), got {period}")
    overrides: dict[str, dict[str, str]] = {}
    for item in params:
        key, sep, value = item.partition("=")
        iname, dot, pname = key.strip().lower().partition(".")
        if not sep or not dot or not pname:
            raise InvalidArgument("params", f"expected 'indicator.param=value', got {item!r}")
        if iname not in names:
            raise InvalidArgument("params", f"{item!r} names indicator {iname!r}, which is not requested")
        overrides.setdefault(iname, {})[pname] = value.strip()
    calls = []
    for n in names:
        spec = SPECS[n]
        p: dict[str, float | int] = dict(spec.params)
        if period and "period" in p:
            p["period"] = period
        for pname, value in overrides.get(n, {}).items():
            if pname not in spec.params:
                valid = ", ".join(sorted(spec.params)) or "none"
                raise InvalidArgument("params", f"{n} has no parameter {pname!r}; valid: {valid}")
            p[pname] = _coerce(n, pname, spec.params[pname], value)
        for pname in ("period", "fast", "slow", "signal", "fastk", "fastd", "slowk", "slowd"):
            if pname in p and not 1 <= int(p[pname]) <= max_period:
                raise InvalidArgument("params", f"{n}.{pname} must be in 1..{max_period}, got {p[pname]}")
        calls.append(IndicatorCall(n, p))
    return calls


def compute(calls: Sequence[IndicatorCall], bars: Any) -> list[IndicatorValues]:
    """Run each indicator over ``bars`` (a storage ``Bars``: ts, open, high, low, close, volume).

    Core errors for parameter values (e.g. fast >= slow) become INVALID_ARGUMENT.
    """
    cols = {"open": bars.open, "high": bars.high, "low": bars.low, "close": bars.close, "volume": bars.volume}
    out = []
    for c in calls:
        spec = SPECS[c.name]
        args = [cols[_INPUT_ALIASES.get(i, "close")] for i in spec.inputs]
        kw: dict[str, Any] = dict(c.params)
        if c.name == "vwap":
            kw["timestamps"] = bars.ts
        try:
            res = spec.func(*args, **kw)
        except (ValueError, TypeError) as exc:
            raise InvalidArgument("params", f"{c.name}: {exc}") from None
        series = res if isinstance(res, tuple) else (res,)
        names = spec.outputs if len(spec.outputs) == len(series) else tuple(f"out{i}" for i in range(len(series)))
        if len(series) == 1:
            names = (c.name,) if names == ("real",) else names
        out.append(
            IndicatorValues(c.name, c.params, [(nm, np.asarray(s)) for nm, s in zip(names, series, strict=True)])
        )
    return out
