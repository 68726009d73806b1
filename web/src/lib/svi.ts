// Raw SVI, as in aiots.v1.SviSlice: total implied variance w(k) = a + b (rho (k - m) +
// sqrt((k - m)^2 + sigma^2)) at log-moneyness k = ln(K/F); implied vol = sqrt(w / t).

export interface SviParams {
  a: number;
  b: number;
  rho: number;
  m: number;
  sigma: number;
  t: number;
}

export function sviTotalVariance(p: SviParams, k: number): number {
  const d = k - p.m;
  return p.a + p.b * (p.rho * d + Math.sqrt(d * d + p.sigma * p.sigma));
}

/** Implied vol at log-moneyness k (NaN where the variance is negative or t <= 0). */
export function sviVol(p: SviParams, k: number): number {
  const w = sviTotalVariance(p, k);
  return w >= 0 && p.t > 0 ? Math.sqrt(w / p.t) : NaN;
}

/** The fitted smile over strikes: [strike, vol] pairs at `n` points between kMin and kMax. */
export function sviCurve(p: SviParams, forward: number, kMin: number, kMax: number, n = 81): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < n; i++) {
    const k = kMin + ((kMax - kMin) * i) / (n - 1);
    out.push([forward * Math.exp(k), sviVol(p, k)]);
  }
  return out;
}
