# Indicator registry (included by indicators.pyx): call any indicator by name without hardcoding.


class IndicatorSpec:
    """What the analytics service needs to call an indicator by name.

    ``inputs``: input array names in positional order; ``params``: keyword defaults (TA-Lib's);
    ``outputs``: output names (TA-Lib order); ``func``: the batch function; ``stream``: the
    streaming class (constructor takes the params positionally, in ``params`` order);
    ``lookback(**params)``: leading NaN count for NaN-free input (TA-Lib's *_Lookback)."""

    __slots__ = ("name", "func", "stream", "inputs", "params", "outputs", "_lookback")

    def __init__(self, name, func, stream, inputs, params, outputs, lookback):
        self.name = name
        self.func = func
        self.stream = stream
        self.inputs = tuple(inputs)
        self.params = dict(params)
        self.outputs = tuple(outputs)
        self._lookback = lookback

    def lookback(self, **params):
        """Number of leading NaN in the output for NaN-free input."""
        unknown = set(params) - set(self.params)
        if unknown:
            raise ValueError(f"{self.name} has no parameter(s) {sorted(unknown)}; "
                             f"allowed: {sorted(self.params)}")
        full = {**self.params, **params}
        return self._lookback(**full)

    def __repr__(self):
        return (f"IndicatorSpec({self.name!r}, inputs={self.inputs}, params={self.params}, "
                f"outputs={self.outputs})")


def _lb_macd(fast, slow, signal):
    f = _period(fast, "fast", 2)
    s = _period(slow, "slow", 2)
    return max(f, s) - 1 + _period(signal, "signal", 1) - 1


_C = ("close",)
_HLc = ("high", "low", "close")
_HLCVn = ("high", "low", "close", "volume")

INDICATORS = {
    s.name: s for s in (
        IndicatorSpec("sma", sma, SMA, _C, {"period": 30}, ("real",),
                      lambda period: _period(period, "period", 1) - 1),
        IndicatorSpec("ema", ema, EMA, _C, {"period": 30}, ("real",),
                      lambda period: _period(period, "period", 1) - 1),
        IndicatorSpec("wma", wma, WMA, _C, {"period": 30}, ("real",),
                      lambda period: _period(period, "period", 1) - 1),
        IndicatorSpec("dema", dema, DEMA, _C, {"period": 30}, ("real",),
                      lambda period: 2 * (_period(period, "period", 1) - 1)),
        IndicatorSpec("tema", tema, TEMA, _C, {"period": 30}, ("real",),
                      lambda period: 3 * (_period(period, "period", 1) - 1)),
        IndicatorSpec("kama", kama, KAMA, _C, {"period": 30}, ("real",),
                      lambda period: (lambda p: 0 if p == 1 else p)(_period(period, "period", 1))),
        IndicatorSpec("bbands", bbands, BBands, _C,
                      {"period": 20, "nbdev_up": 2.0, "nbdev_dn": 2.0},
                      ("upperband", "middleband", "lowerband"),
                      lambda period, nbdev_up, nbdev_dn: _period(period, "period", 2) - 1),
        IndicatorSpec("sar", sar, SAR, ("high", "low"), {"acceleration": 0.02, "maximum": 0.2},
                      ("real",), lambda acceleration, maximum: 1),
        IndicatorSpec("vwap", vwap, VWAP, _HLCVn, {}, ("real",), lambda: 0),
        IndicatorSpec("rsi", rsi, RSI, _C, {"period": 14}, ("real",),
                      lambda period: _period(period, "period", 2)),
        IndicatorSpec("macd", macd, MACD, _C, {"fast": 12, "slow": 26, "signal": 9},
                      ("macd", "macdsignal", "macdhist"), _lb_macd),
        IndicatorSpec("stoch", stoch, Stoch, _HLc, {"fastk": 5, "slowk": 3, "slowd": 3},
                      ("slowk", "slowd"),
                      lambda fastk, slowk, slowd: _period(fastk, "fastk", 1)
                      + _period(slowk, "slowk", 1) + _period(slowd, "slowd", 1) - 3),
        IndicatorSpec("stochrsi", stochrsi, StochRSI, _C, {"period": 14, "fastk": 5, "fastd": 3},
                      ("fastk", "fastd"),
                      lambda period, fastk, fastd: _period(period, "period", 2)
                      + _period(fastk, "fastk", 1) + _period(fastd, "fastd", 1) - 2),
        IndicatorSpec("adx", adx, ADX, _HLc, {"period": 14}, ("real",),
                      lambda period: 2 * _period(period, "period", 2) - 1),
        IndicatorSpec("plus_di", plus_di, None, _HLc, {"period": 14}, ("real",),
                      lambda period: _period(period, "period", 1)),
        IndicatorSpec("minus_di", minus_di, None, _HLc, {"period": 14}, ("real",),
                      lambda period: _period(period, "period", 1)),
        IndicatorSpec("cci", cci, CCI, _HLc, {"period": 14}, ("real",),
                      lambda period: _period(period, "period", 2) - 1),
        IndicatorSpec("willr", willr, WillR, _HLc, {"period": 14}, ("real",),
                      lambda period: _period(period, "period", 2) - 1),
        IndicatorSpec("mfi", mfi, MFI, _HLCVn, {"period": 14}, ("real",),
                      lambda period: _period(period, "period", 2)),
        IndicatorSpec("roc", roc, ROC, _C, {"period": 10}, ("real",),
                      lambda period: _period(period, "period", 1)),
        IndicatorSpec("mom", mom, MOM, _C, {"period": 10}, ("real",),
                      lambda period: _period(period, "period", 1)),
        IndicatorSpec("aroon", aroon, Aroon, ("high", "low"), {"period": 14},
                      ("aroondown", "aroonup"), lambda period: _period(period, "period", 2)),
        IndicatorSpec("atr", atr, ATR, _HLc, {"period": 14}, ("real",),
                      lambda period: _period(period, "period", 1)),
        IndicatorSpec("natr", natr, NATR, _HLc, {"period": 14}, ("real",),
                      lambda period: _period(period, "period", 1)),
        IndicatorSpec("trange", trange, TRange, _HLc, {}, ("real",), lambda: 1),
        IndicatorSpec("stddev", stddev, StdDev, _C, {"period": 5, "nbdev": 1.0}, ("real",),
                      lambda period, nbdev: _period(period, "period", 2) - 1),
        IndicatorSpec("obv", obv, OBV, ("close", "volume"), {}, ("real",), lambda: 0),
        IndicatorSpec("ad", ad, AD, _HLCVn, {}, ("real",), lambda: 0),
        IndicatorSpec("adosc", adosc, ADOSC, _HLCVn, {"fast": 3, "slow": 10}, ("real",),
                      lambda fast, slow: max(_period(fast, "fast", 2), _period(slow, "slow", 2)) - 1),
    )
}


def lookback(name, **params):
    """TA-Lib *_Lookback for indicator ``name`` with the given (or default) parameters."""
    try:
        spec = INDICATORS[name]
    except KeyError:
        raise ValueError(f"unknown indicator {name!r}; known: {sorted(INDICATORS)}") from None
    return spec.lookback(**params)


__all__ = [
    "INDICATORS", "IndicatorSpec", "lookback", "ny_session_starts",
    *INDICATORS,
    "EMA", "SMA", "WMA", "DEMA", "TEMA", "KAMA", "BBands", "SAR", "VWAP", "RSI", "MACD", "Stoch",
    "StochRSI", "ADX", "CCI", "WillR", "MFI", "ROC", "MOM", "Aroon", "ATR", "NATR", "TRange",
    "StdDev", "OBV", "AD", "ADOSC",
]


# bar fields each streaming class reads in handle_bar (its update's positional inputs)
_BAR_FIELDS = {spec.stream: spec.inputs for spec in INDICATORS.values() if spec.stream is not None}
