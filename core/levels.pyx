"""Compiled level maths of long option contracts: executable entry/target/stop, reward:risk,
contracts to trade, the model's target/stop probabilities and the expected value, for a batch of
candidate contracts in one call (:func:`contract_levels`), and the element-wise pieces it is made of.

Conventions
-----------
* Prices are dollars per share: a contract is bought at the **ask**; its target and stop are prices
  of the **bid** (where a long holder sells). Fees are dollars per contract per fill. Greeks are in
  trader units (theta per calendar day). Times: ``trading_days`` sessions of the horizon, ``years``
  trading years (for the probabilities: sigma * sqrt(trading years)).
* Python's ``min``/``max`` rule, element by element: ``max(a, b)`` is ``b`` only where ``b > a``
  (``a`` otherwise, NaN ``b`` included), ``min(a, b)`` is ``b`` only where ``b < a``. NaN inputs
  propagate as the arithmetic does; nothing raises or warns inside a loop (IEEE inf/NaN results).
* Element-wise functions broadcast with NumPy rules and return a float64 array of the broadcast
  shape, or a Python float when every argument is a scalar.
* Loops are scalar C libm (``exp``, ``log``, ``sqrt``, ``erfc``) without the GIL: the batches are
  small (3-40 contracts), where NumPy's per-call cost dominated.
"""

from libc.math cimport INFINITY, NAN, copysign, erfc, exp, expm1, fabs, floor, fmod, isfinite, log, sqrt
from libc.stdint cimport INT64_MIN, int64_t

import numpy as np

cimport numpy as cnp

cnp.import_array()

include "_erfcx.pxi"

cdef double PCT = 100.0  # percent per unit
cdef double SQRT2 = sqrt(2.0)
# the first-passage mirror term exp(x) N(z2) is taken as erfcx(-z2/sqrt2) exp(-z1^2/2) / 2 ...
cdef double MAX_TAIL_EXPONENT = 700.0  # ... from this x (exp(x) is inf from 709.8)
cdef double MIN_TAIL_Z = -37.0  # ... and for z2 below this (N(z2) nears the subnormals: N(-37.5) ~ 2e-308)
cdef double TWO_TO_63 = 9.223372036854775808e18  # the int64 range is [-2^63, 2^63)


# ------------------------------------------------------------------------------------------------
# Scalar kernels
# ------------------------------------------------------------------------------------------------
cdef inline double _pymax(double a, double b) noexcept nogil:
    """``max(a, b)`` with Python's rule: ``b`` only where ``b > a`` (NaN never wins as ``b``)."""
    return b if b > a else a


cdef inline double _pymin(double a, double b) noexcept nogil:
    """``min(a, b)`` with Python's rule: ``b`` only where ``b < a``."""
    return b if b < a else a


cdef inline double _norm_cdf(double x) noexcept nogil:
    return 0.5 * erfc(-x / SQRT2)


cdef inline double _exit_for_return(double entry_price, double pct, double fee_per_share) noexcept nogil:
    return (entry_price + fee_per_share) * (1.0 + pct / PCT) + fee_per_share


cdef inline double _move(double delta, double gamma, double theta_day, double days, double dv) noexcept nogil:
    # 0.5*gamma*x^2 + delta*x + c = 0; the small root c/q is numerically stable (and exact as gamma -> 0)
    cdef double c = theta_day * days - dv
    cdef double disc = delta * delta - 2.0 * gamma * c
    cdef double denom
    if disc < 0:
        return NAN
    denom = delta + copysign(sqrt(disc), delta)
    if denom == 0:
        return NAN
    return -2.0 * c / denom


cdef inline double _race(double spot, double upper, double lower, double sigma, double mu) noexcept nogil:
    """P(hit ``upper`` before ``lower``) with the scale function s(x) = exp(-k x) of the log-price,
    k = 2 m / sigma^2: (s(0) - s(b)) / (s(a) - s(b)) for a = ln(upper/spot) > 0 > b = ln(lower/spot),
    rewritten with expm1 of non-positive arguments only, so that nothing overflows (any drift) and
    nothing cancels (k near 0 is as exact as k = 0, the log-distance ratio -b / (a - b))."""
    cdef double a, b, m, k, num, den
    if not (lower < spot and spot < upper and not sigma <= 0):
        return 0.0 if spot <= lower else 1.0
    a = log(upper / spot)
    b = log(lower / spot)
    m = mu - 0.5 * sigma * sigma
    k = 2.0 * m / (sigma * sigma)
    if k > 0:  # multiplied through by e^{k b}: (e^{k b} - 1) / (e^{k (b - a)} - 1)
        num, den = expm1(k * b), expm1(k * (b - a))
        if den != 0:
            return num / den
    elif k < 0:  # by e^{k a} (k = -j): e^{-j a} (e^{j b} - 1) / (e^{j (b - a)} - 1)
        num, den = expm1(-k * b), expm1(-k * (b - a))
        if den != 0:
            return exp(k * a) * (num / den)
    return -b / (a - b)  # no drift, or one below what the exponents resolve (they underflowed)


cdef inline double _reach(double spot, double level, double sigma, double years, double drift) noexcept nogil:
    """First passage to ``level`` within ``years``: N(z1) + e^{x} N(z2), z1,2 = (+-m t - a)/(s sqrt t),
    x = 2 m a / s^2. From x = MAX_TAIL_EXPONENT, or z2 below MIN_TAIL_Z, the mirror term is
    erfcx(-z2/sqrt2) e^{-z1^2/2} / 2: the same number (x - z2^2/2 = -z1^2/2) without the overflow of
    e^x or the underflow of N(z2) (z2 < 0 in both cases)."""
    cdef double a, m, st, expo, tail, z1, z2
    if years <= 0 or sigma <= 0 or level <= 0:
        return 0.0
    a = log(level / spot)
    m = -drift if a < 0 else drift
    a = fabs(a)
    st = sigma * sqrt(years)
    expo = 2.0 * m * a / (sigma * sigma)
    z1 = (m * years - a) / st
    z2 = (-m * years - a) / st
    if expo < MAX_TAIL_EXPONENT and not z2 < MIN_TAIL_Z:
        tail = exp(expo) * _norm_cdf(z2)
    else:
        tail = 0.5 * erfcx(-z2 / SQRT2) * exp(-0.5 * z1 * z1)
    return _pymin(1.0, _norm_cdf(z1) + tail)


cdef inline double _ev(double conf, double p_model, double p_stop, double gain, double loss,
                       double at_horizon) noexcept nogil:
    cdef double rest = _pymax(0.0, 1.0 - p_model)
    cdef double stop_share = _pymin(1.0, p_stop / rest) if rest > 0 else 1.0
    cdef double p_t = _pymin(_pymax(conf, 0.0), 1.0)
    cdef double p_s = (1.0 - p_t) * stop_share
    return p_t * gain - p_s * loss + (1.0 - p_t - p_s) * _pymin(_pymax(at_horizon, -loss), gain)


cdef inline double _floor_divide(double a, double b) noexcept nogil:
    """NumPy's float64 ``floor_divide`` (its ``npy_divmod`` quotient: Python's float ``//`` rule)."""
    cdef double mod, div, floordiv
    if b == 0:
        return a / b
    mod = fmod(a, b)
    div = (a - mod) / b
    if mod != 0:  # NaN too, as C's truth test
        if (b < 0) != (mod < 0):
            div -= 1.0
    if div != 0:
        floordiv = floor(div)
        if div - floordiv > 0.5:
            floordiv += 1.0
    else:
        floordiv = copysign(0.0, a / b)
    return floordiv


cdef inline int64_t _as_int64(double x) noexcept nogil:
    """NumPy's float64 -> int64 ``astype`` on x86-64 (``cvttsd2si``): truncation toward zero, and
    the 'integer indefinite' INT64_MIN for NaN or a value outside the int64 range."""
    if -TWO_TO_63 <= x < TWO_TO_63:
        return <int64_t>x
    return INT64_MIN


# ------------------------------------------------------------------------------------------------
# Arguments
# ------------------------------------------------------------------------------------------------
cdef object _vector(object x, Py_ssize_t n, int typenum, str name):
    """``x`` as an aligned, native, C-contiguous 1-D array of ``typenum`` and length ``n``: ``x``
    itself when it already is one (the selector's gathers), else a converted copy."""
    cdef cnp.ndarray a
    if cnp.PyArray_CheckExact(x):
        a = <cnp.ndarray>x
        if (cnp.PyArray_TYPE(a) == typenum and cnp.PyArray_NDIM(a) == 1 and cnp.PyArray_ISBEHAVED_RO(a)
                and cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_DIM(a, 0) == n):
            return a
    if typenum == cnp.NPY_INT64 and np.asarray(x).dtype.kind not in "iub":
        raise TypeError(f"{name} must hold integers")
    a = np.ascontiguousarray(x, dtype=np.int64 if typenum == cnp.NPY_INT64 else np.float64)
    if cnp.PyArray_NDIM(a) != 1 or cnp.PyArray_DIM(a, 0) != n:
        raise ValueError(f"{name} must be 1-D of length {n} (as bid), got shape {np.shape(x)}")
    return a


cdef inline double* _f64p(object a):
    return <double*>cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline object _empty(Py_ssize_t n, int typenum):
    cdef cnp.npy_intp dim = n
    return cnp.PyArray_EMPTY(1, &dim, typenum, 0)


cdef tuple _broadcast(tuple xs):
    """(list of contiguous float64 1-D arrays of one length, the broadcast shape, all scalars?)."""
    arrs = np.broadcast_arrays(*[np.asarray(x, dtype=np.float64) for x in xs])
    shape = arrs[0].shape
    return [np.ascontiguousarray(a).reshape(-1) for a in arrs], shape, len(shape) == 0


cdef object _finish(object out, tuple shape, bint scalar):
    return float(out[0]) if scalar else out.reshape(shape)


ctypedef double (*Kernel5)(double, double, double, double, double) noexcept nogil


cdef object _elementwise5(Kernel5 fn, tuple args):
    """``fn`` element by element over the broadcast of its five arguments (the module's conventions)."""
    f, shape, scalar = _broadcast(args)
    cdef Py_ssize_t i, n = len(f[0])
    out = _empty(n, cnp.NPY_DOUBLE)
    cdef double* o = _f64p(out)
    cdef double* p0 = _f64p(f[0])
    cdef double* p1 = _f64p(f[1])
    cdef double* p2 = _f64p(f[2])
    cdef double* p3 = _f64p(f[3])
    cdef double* p4 = _f64p(f[4])
    with nogil:
        for i in range(n):
            o[i] = fn(p0[i], p1[i], p2[i], p3[i], p4[i])
    return _finish(out, shape, scalar)


# ------------------------------------------------------------------------------------------------
# Public element-wise functions
# ------------------------------------------------------------------------------------------------
def exit_for_return(double entry_price, double pct, double fee_per_share):
    """The bid per share at which a long bought at ``entry_price`` returns ``pct`` % after a fee of
    ``fee_per_share`` on each leg (the execution model's rule, :meth:`ExecutionModel.exit_for_return`)."""
    return _exit_for_return(entry_price, pct, fee_per_share)


def move_for_option_change(delta, gamma, theta_day, days, dv):
    """Underlying move x (signed like delta) with delta*x + gamma*x^2/2 + theta_day*days = dv, the
    root nearer zero; NaN if none (element-wise)."""
    return _elementwise5(_move, (delta, gamma, theta_day, days, dv))


def race_probability(spot, upper, lower, sigma, mu):
    """P(log-price hits ln(upper) before ln(lower)) for drift ``mu - sigma^2/2`` (per year),
    element-wise; 0 at or below ``lower``, 1 otherwise outside the band or with no volatility."""
    return _elementwise5(_race, (spot, upper, lower, sigma, mu))


def reach_probability(spot, level, sigma, years, drift=0.0):
    """P(the log-price, with log drift ``drift`` per year, touches ln(level/spot) within ``years``),
    element-wise; 0 with no time, no volatility or a level <= 0.

    First passage of Brownian motion with drift m to a barrier a > 0 (mirrored for a < 0):
    N((m t - a) / (s sqrt t)) + exp(2 m a / s^2) N((-m t - a) / (s sqrt t)), the second term in a form
    that neither overflows nor underflows where exp or N would; with m = 0 this is the reflection
    principle 2 N(-|a| / (s sqrt t)).
    """
    return _elementwise5(_reach, (spot, level, sigma, years, drift))


def expected_value(conf, p_model, p_stop, gain, loss, at_horizon):
    """Expected P&L per share: the target with probability ``conf`` (calibrated, clipped to [0, 1]),
    the stop with the model's share ``p_stop / (1 - p_model)`` of the rest, else the horizon exit
    worth ``at_horizon`` (clipped to [-loss, gain]). ``gain``/``loss`` are net of fees, dollars per
    share; element-wise (Python floats in: a Python float out, without building arrays)."""
    if (type(conf) is float and type(p_model) is float and type(p_stop) is float and type(gain) is float
            and type(loss) is float and type(at_horizon) is float):
        return _ev(conf, p_model, p_stop, gain, loss, at_horizon)
    f, shape, scalar = _broadcast((conf, p_model, p_stop, gain, loss, at_horizon))
    cdef Py_ssize_t i, n = len(f[0])
    out = _empty(n, cnp.NPY_DOUBLE)
    cdef double* o = _f64p(out)
    cdef double* p0 = _f64p(f[0])
    cdef double* p1 = _f64p(f[1])
    cdef double* p2 = _f64p(f[2])
    cdef double* p3 = _f64p(f[3])
    cdef double* p4 = _f64p(f[4])
    cdef double* p5 = _f64p(f[5])
    with nogil:
        for i in range(n):
            o[i] = _ev(p0[i], p1[i], p2[i], p3[i], p4[i], p5[i])
    return _finish(out, shape, scalar)


# ------------------------------------------------------------------------------------------------
# The batch kernel
# ------------------------------------------------------------------------------------------------
cdef struct _Rules:
    # the idea and the horizon
    double spot, move, trading_days, years, log_drift, theta_days_per_year, sessions_per_year, noise_move
    bint bullish
    # costs and the selection's rules
    double fee_per_contract, exit_fee_per_share, spread_cover, target_min_pct, target_max_pct, target_capture
    double stop_spread_mult, stop_noise_mult, max_stop_pct, min_reward_risk, risk_per_trade_usd


cdef struct _Out:
    unsigned char* valid
    double* target
    double* stop
    double* rr
    double* p_model
    double* p_stop
    double* gain
    double* loss
    double* cost
    double* flat
    double* risk_usd
    int64_t* contracts
    double* ev_model_pct


cdef void _levels_loop(Py_ssize_t n, const double* bid, const double* ask, const int64_t* multiplier,
                       const double* iv, const double* delta, const double* gamma, const double* theta,
                       const _Rules* R, _Out* O) noexcept nogil:
    cdef Py_ssize_t i
    cdef double b, a, mult, fee, cost, spread, th, dv, net_ret, t_pct, target, noise, stop, loss, gain
    cdef double rr, x_up, x_dn, flat, risk, per, hit, miss, vol, mu, p_race, p_model, p_stop, ev
    cdef double dS = R.move, td = R.trading_days, spot = R.spot
    cdef int64_t contracts
    cdef bint ok
    for i in range(n):
        b, a, mult = bid[i], ask[i], <double>multiplier[i]
        fee = R.fee_per_contract / mult  # dollars per share per fill
        cost = a + fee  # entry at the ask
        spread = a - b
        th = theta[i] * R.theta_days_per_year / R.sessions_per_year  # theta per trading day
        dv = delta[i] * dS + 0.5 * gamma[i] * dS * dS + th * td
        ok = not (dv <= R.spread_cover * 0.5 * spread)  # the projected move can't even pay the spread
        net_ret = PCT * ((b + dv - fee) / cost - 1.0)  # sell at the bid after the projected move
        t_pct = _pymin(R.target_max_pct, _pymax(R.target_min_pct, R.target_capture * net_ret))
        target = _exit_for_return(a, t_pct, R.exit_fee_per_share)  # a bid price
        noise = fabs(delta[i]) * R.noise_move + 0.5 * fabs(gamma[i]) * R.noise_move * R.noise_move
        stop = a - _pymax(R.stop_spread_mult * spread, R.stop_noise_mult * noise)  # a bid price
        ok = ok and not (stop <= 0)
        loss = cost - (stop - fee)  # dollars per share lost at the stop
        gain = target - fee - cost
        ok = ok and not (PCT * loss / cost > R.max_stop_pct)
        rr = gain / loss if loss > 0 else INFINITY
        ok = ok and not (rr < R.min_reward_risk)
        # underlying moves where the bid reaches the target / the stop (the bid moves with the option)
        x_up = _move(delta[i], gamma[i], th, td, target - b)
        x_dn = _move(delta[i], gamma[i], th, td, stop - b)
        ok = ok and isfinite(x_up) and isfinite(x_dn) and spot + dS > 0
        # a horizon exit is valued without the strategy's edge: the bid after theta, sold, less the cost
        flat = b + th * td - fee - cost
        risk = loss * mult
        contracts = 0
        if risk > 0:
            per = _floor_divide(R.risk_per_trade_usd, risk)
            if isfinite(per):
                contracts = _as_int64(per)
        ok = ok and contracts >= 1  # one contract already risks more than the budget per trade
        p_model = p_stop = ev = NAN  # the probabilities only where the contract pays its costs
        if ok:
            hit, miss, vol = spot + x_up, spot + x_dn, iv[i]
            # the model: the strategy's projected move as the drift of a lognormal at the contract's IV
            mu = R.log_drift + 0.5 * vol * vol
            if R.bullish:
                p_race = _race(spot, hit, miss, vol, mu) if hit > spot and spot > miss else 0.0
            else:
                p_race = 1.0 - _race(spot, miss, hit, vol, mu) if miss > spot and spot > hit and hit > 0 else 0.0
            p_model = p_race * (_reach(spot, hit, vol, R.years, R.log_drift) if hit > 0 else 0.0)
            p_stop = (1.0 - p_race) * _reach(spot, miss, vol, R.years, R.log_drift) if miss > 0 else 1.0
            ev = PCT * _ev(p_model, p_model, p_stop, gain, loss, flat) / cost
        O.valid[i] = ok
        O.target[i], O.stop[i], O.rr[i], O.gain[i], O.loss[i], O.cost[i] = target, stop, rr, gain, loss, cost
        O.flat[i], O.risk_usd[i], O.contracts[i] = flat, risk, contracts
        O.p_model[i], O.p_stop[i], O.ev_model_pct[i] = p_model, p_stop, ev


def contract_levels(
    bid, ask, multiplier, iv, delta, gamma, theta, *,
    double spot, double move, double trading_days, double years, double log_drift, bint bullish,
    double theta_days_per_year, double sessions_per_year, double noise_move,
    double fee_per_contract, double exit_fee_per_share, double spread_cover,
    double target_min_pct, double target_max_pct, double target_capture,
    double stop_spread_mult, double stop_noise_mult, double max_stop_pct, double min_reward_risk,
    double risk_per_trade_usd,
):
    """Executable levels of each long contract quoted ``bid``/``ask`` (1-D arrays of one length;
    ``multiplier`` integer shares per contract; ``iv``, ``delta``, ``gamma``, ``theta`` (per calendar
    day) its IV and trader-unit Greeks), for an idea projecting the underlying at ``spot`` to move by
    ``move`` within ``trading_days`` sessions (``years`` trading years; ``log_drift`` =
    ln((spot + move) / spot) / years, NaN when spot + move <= 0).

    Returns ``(valid, target, stop, rr, p_model, p_stop, gain, loss, cost, flat, risk_usd, contracts,
    ev_model_pct)``, new arrays of that length (dollars per share unless said; ``valid`` bool,
    ``contracts`` int64). Per contract, fee = ``fee_per_contract`` / multiplier per fill:

    * entry at the ask, cost = ask + fee; dv = delta move + gamma move^2 / 2 + theta_td days, with
      theta_td = theta ``theta_days_per_year`` / ``sessions_per_year`` (per trading day);
    * target: the bid returning t % after fees (the execution model's rule with
      ``exit_fee_per_share``), t = min(max_pct, max(min_pct, capture x the net return of selling at
      bid + dv)); stop = ask - max(``stop_spread_mult`` spread, ``stop_noise_mult`` noise), noise =
      |delta| ``noise_move`` + |gamma| ``noise_move``^2 / 2;
    * gain = target - fee - cost, loss = cost - (stop - fee), rr = gain / loss (inf at loss <= 0),
      flat = bid + theta_td days - fee - cost (the horizon exit with no move), risk_usd = loss x
      multiplier, contracts = ``risk_per_trade_usd`` // risk_usd (NumPy's floor_divide and int64
      cast; 0 at risk <= 0 or a non-finite quotient);
    * valid: dv beats ``spread_cover`` half-spreads, stop > 0, loss <= ``max_stop_pct`` % of the cost,
      rr >= ``min_reward_risk``, the underlying moves to the target and the stop exist (the Taylor
      model, :func:`move_for_option_change`), spot + move > 0 and contracts >= 1 (each test passes on
      NaN, as a NumPy ``~(x <= y)`` mask);
    * where valid (NaN elsewhere): the race of the underlying to the target's level before the
      stop's (:func:`race_probability`, bullish: up first; bearish: down first) at the contract's IV
      with drift ``log_drift``, times the chance of reaching the level within the horizon
      (:func:`reach_probability`) is p_model; p_stop the rest of the race times the chance of
      reaching the stop's level; ev_model_pct the expected value (:func:`expected_value` at
      conf = p_model) in % of the cost.
    """
    cdef Py_ssize_t n = len(bid)
    cdef object b = _vector(bid, n, cnp.NPY_DOUBLE, "bid")
    cdef object a = _vector(ask, n, cnp.NPY_DOUBLE, "ask")
    cdef object m = _vector(multiplier, n, cnp.NPY_INT64, "multiplier")
    cdef object v = _vector(iv, n, cnp.NPY_DOUBLE, "iv")
    cdef object d = _vector(delta, n, cnp.NPY_DOUBLE, "delta")
    cdef object g = _vector(gamma, n, cnp.NPY_DOUBLE, "gamma")
    cdef object t = _vector(theta, n, cnp.NPY_DOUBLE, "theta")
    cdef _Rules R
    R.spot, R.move, R.trading_days, R.years, R.log_drift = spot, move, trading_days, years, log_drift
    R.theta_days_per_year, R.sessions_per_year, R.noise_move, R.bullish = (
        theta_days_per_year, sessions_per_year, noise_move, bullish)
    R.fee_per_contract, R.exit_fee_per_share, R.spread_cover = fee_per_contract, exit_fee_per_share, spread_cover
    R.target_min_pct, R.target_max_pct, R.target_capture = target_min_pct, target_max_pct, target_capture
    R.stop_spread_mult, R.stop_noise_mult, R.max_stop_pct = stop_spread_mult, stop_noise_mult, max_stop_pct
    R.min_reward_risk, R.risk_per_trade_usd = min_reward_risk, risk_per_trade_usd
    valid = _empty(n, cnp.NPY_BOOL)
    target, stop, rr, p_model, p_stop = (_empty(n, cnp.NPY_DOUBLE), _empty(n, cnp.NPY_DOUBLE),
                                         _empty(n, cnp.NPY_DOUBLE), _empty(n, cnp.NPY_DOUBLE),
                                         _empty(n, cnp.NPY_DOUBLE))
    gain, loss, cost, flat, risk_usd = (_empty(n, cnp.NPY_DOUBLE), _empty(n, cnp.NPY_DOUBLE),
                                        _empty(n, cnp.NPY_DOUBLE), _empty(n, cnp.NPY_DOUBLE),
                                        _empty(n, cnp.NPY_DOUBLE))
    contracts, ev_model_pct = _empty(n, cnp.NPY_INT64), _empty(n, cnp.NPY_DOUBLE)
    cdef _Out O
    O.valid = <unsigned char*>cnp.PyArray_DATA(<cnp.ndarray>valid)
    O.target, O.stop, O.rr, O.p_model, O.p_stop = _f64p(target), _f64p(stop), _f64p(rr), _f64p(p_model), _f64p(p_stop)
    O.gain, O.loss, O.cost, O.flat, O.risk_usd = _f64p(gain), _f64p(loss), _f64p(cost), _f64p(flat), _f64p(risk_usd)
    O.contracts = <int64_t*>cnp.PyArray_DATA(<cnp.ndarray>contracts)
    O.ev_model_pct = _f64p(ev_model_pct)
    cdef const double* pb = _f64p(b)
    cdef const double* pa = _f64p(a)
    cdef const int64_t* pm = <const int64_t*>cnp.PyArray_DATA(<cnp.ndarray>m)
    cdef const double* pv = _f64p(v)
    cdef const double* pd = _f64p(d)
    cdef const double* pg = _f64p(g)
    cdef const double* pt = _f64p(t)
    with nogil:
        _levels_loop(n, pb, pa, pm, pv, pd, pg, pt, &R, &O)
    return valid, target, stop, rr, p_model, p_stop, gain, loss, cost, flat, risk_usd, contracts, ev_model_pct
