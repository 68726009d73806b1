"""Quote hygiene: which price (if any) each contract of a chain may be analysed with.

Rules (prices in dollars per share, times int64 ns UTC):

- A **mid** needs both sides quoted (bid > 0 and ask > 0, both finite) and not crossed
  (bid <= ask; a locked quote bid == ask is kept). Never ask/2 when the bid is 0.
- Without a two-sided quote, the **last** trade prices the contract only when its time is known
  and its age at the chain time is at most ``max_last_age_ns``; it is then flagged
  (``source == "last"``). A last of unknown age counts as stale.
- Everything else has no price, with a reason: ``NO_QUOTE`` (nothing at all), ``ONE_SIDED``
  (exactly one side), ``CROSSED`` (bid > ask) or ``STALE_LAST`` (a last older than the limit).

Fits, skews, ATM IV and the parity forward use two-sided quotes only (``source == "quote"``);
per-contract IVs and Greeks also use a fresh last. :func:`exclusion_counts` turns the reasons of
the left-out contracts into the ``excluded`` counts of the responses.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

QUOTE = "quote"
LAST = "last"
NO_QUOTE = "NO_QUOTE"
ONE_SIDED = "ONE_SIDED"
CROSSED = "CROSSED"
STALE_LAST = "STALE_LAST"
#: priced from a fresh last trade: shown per contract, kept out of fits and skews
LAST_PRICE = "LAST_PRICE"


@dataclass(frozen=True)
class CleanPrices:
    """Per contract: the usable price (NaN when none), its source ("quote", "last" or "") and,
    when there is no two-sided quote, why ("" for two-sided quotes)."""

    price: F64
    source: list[str]
    reason: list[str]

    @property
    def two_sided(self) -> npt.NDArray[np.bool_]:
        """Contracts priced from a two-sided, uncrossed quote (the only ones fits and skews use)."""
        return np.array([s == QUOTE for s in self.source], dtype=np.bool_)


def clean_prices(
    bid: F64,
    ask: F64,
    last: F64,
    last_ts: I64 | None,
    as_of_ns: int,
    max_last_age_ns: int,
) -> CleanPrices:
    """Apply the module's rules to aligned arrays; ``last_ts`` 0 (or None) means age unknown."""
    b = np.asarray(bid, dtype=np.float64)
    a = np.asarray(ask, dtype=np.float64)
    lp = np.asarray(last, dtype=np.float64)
    n = b.shape[0]
    lts = np.zeros(n, dtype=np.int64) if last_ts is None else np.asarray(last_ts, dtype=np.int64)
    has_b = np.isfinite(b) & (b > 0)
    has_a = np.isfinite(a) & (a > 0)
    crossed = has_b & has_a & (b > a)
    two = has_b & has_a & ~crossed
    has_last = np.isfinite(lp) & (lp > 0)
    fresh = has_last & (lts > 0) & (as_of_ns - lts <= max_last_age_ns) & (lts <= as_of_ns)
    price = np.where(two, (b + a) / 2.0, np.where(fresh, lp, np.nan))
    source: list[str] = []
    reason: list[str] = []
    for i in range(n):
        if two[i]:
            source.append(QUOTE)
            reason.append("")
        elif fresh[i]:
            source.append(LAST)
            reason.append(LAST_PRICE)
        else:
            source.append("")
            if crossed[i]:
                reason.append(CROSSED)
            elif has_b[i] or has_a[i]:
                reason.append(ONE_SIDED)
            elif has_last[i]:
                reason.append(STALE_LAST)
            else:
                reason.append(NO_QUOTE)
    return CleanPrices(price=np.asarray(price, dtype=np.float64), source=source, reason=reason)


def exclusion_counts(reasons: Iterable[str]) -> list[tuple[str, int]]:
    """(reason, count) of the non-empty reasons, most frequent first (ties by name)."""
    c = Counter(r for r in reasons if r)
    return sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))
