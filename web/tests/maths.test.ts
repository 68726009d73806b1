import { describe, expect, it } from "vitest";
import { fmt, num, pct } from "../src/lib/num";
import { sviCurve, sviTotalVariance, sviVol } from "../src/lib/svi";
import { equityCurve } from "../src/pages/backtests";
import { chainRows, sviOf } from "../src/pages/chain";
import { mergeSignal } from "../src/pages/signals";
import { usage } from "../src/pages/portfolio";
import { patternMarkers } from "../src/pages/symbol";
import type { Msg } from "../src/lib/api";

describe("proto3 JSON numbers", () => {
  it("maps the special strings and int64 strings", () => {
    expect(num(1.5)).toBe(1.5);
    expect(num("NaN")).toBeNaN();
    expect(num("Infinity")).toBe(Infinity);
    expect(num("-Infinity")).toBe(-Infinity);
    expect(num("9007199254740")).toBe(9007199254740);
    expect(num(undefined)).toBeNaN();
    expect(num("")).toBeNaN();
    expect(fmt("NaN")).toBe("–");
    expect(fmt(1234.5)).toBe("1,234.50");
    expect(pct(0.2925)).toBe("29.3%");
  });
});

describe("raw SVI", () => {
  // Hand-derived: a=0.04, b=0.4, rho=-0.4, m=0, sigma=0.1, t=0.25.
  // k=0:    w = 0.04 + 0.4*(0 + 0.1)              = 0.08   -> vol = sqrt(0.08/0.25) = sqrt(0.32)
  // k=0.1:  w = 0.04 + 0.4*(-0.04 + sqrt(0.02))   = 0.04 - 0.016 + 0.4*0.1414213562 = 0.0805685425
  // k=-0.1: w = 0.04 + 0.4*(0.04 + sqrt(0.02))    = 0.1125685425
  const p = { a: 0.04, b: 0.4, rho: -0.4, m: 0, sigma: 0.1, t: 0.25 };
  it("total variance and vol at hand-computed points", () => {
    expect(sviTotalVariance(p, 0)).toBeCloseTo(0.08, 12);
    expect(sviTotalVariance(p, 0.1)).toBeCloseTo(0.0805685425, 9);
    expect(sviTotalVariance(p, -0.1)).toBeCloseTo(0.1125685425, 9);
    expect(sviVol(p, 0)).toBeCloseTo(Math.sqrt(0.32), 12);
    expect(sviVol({ ...p, a: -1 }, 0)).toBeNaN(); // negative variance: no vol
  });
  it("the curve runs over strikes F e^k", () => {
    const c = sviCurve(p, 100, -0.2, 0.2, 5);
    expect(c.map(([k]) => k)).toEqual([100 * Math.exp(-0.2), 100 * Math.exp(-0.1), 100, 100 * Math.exp(0.1), 100 * Math.exp(0.2)]);
    expect(c[2][1]).toBeCloseTo(Math.sqrt(0.32), 12);
  });
  it("only fitted slices give parameters", () => {
    const slice = { status: "OK", a: 0.04, b: 0.4, rho: -0.4, m: 0, sigma: 0.1, t: 0.25 };
    expect(sviOf(slice)).toEqual(p);
    expect(sviOf({ ...slice, status: "TOO_FEW_QUOTES" })).toBeNull();
    expect(sviOf({ ...slice, a: "NaN" })).toBeNull();
  });
});

describe("page helpers", () => {
  it("chain rows sort by strike then call before put", () => {
    const q = (occ: string, strike: number, right: "OPTION_RIGHT_CALL" | "OPTION_RIGHT_PUT"): Msg<"aiots.v1.OptionQuote"> => ({
      contract: { occ_symbol: occ, strike, right },
      bid: 1,
      ask: 1.1,
      iv: 0.3,
    });
    const rows = chainRows([q("P105", 105, "OPTION_RIGHT_PUT"), q("C110", 110, "OPTION_RIGHT_CALL"), q("C105", 105, "OPTION_RIGHT_CALL")]);
    expect(rows.map((r) => r[0])).toEqual(["C105", "P105", "C110"]);
    expect(rows[0].slice(1, 6)).toEqual(["call", "105.00", "1.00", "1.10", "30.0%"]);
  });

  it("an update replaces its signal; newest id first", () => {
    let list: Msg<"aiots.v1.Signal">[] = [];
    list = mergeSignal(list, { id: "01A", status: "SIGNAL_STATUS_OPEN" });
    list = mergeSignal(list, { id: "01B", status: "SIGNAL_STATUS_OPEN" });
    list = mergeSignal(list, { id: "01A", status: "SIGNAL_STATUS_TARGET_HIT" });
    expect(list.map((s) => [s.id, s.status])).toEqual([
      ["01B", "SIGNAL_STATUS_OPEN"],
      ["01A", "SIGNAL_STATUS_TARGET_HIT"],
    ]);
    expect(mergeSignal(list, { id: "01C" }, 2).map((s) => s.id)).toEqual(["01C", "01B"]);
  });

  it("equity is the running sum of P&L in exit order; limit usage is |current|/limit", () => {
    const eq = equityCurve([
      { exit_time: "2024-03-05T15:00:00Z", pnl_usd: -20 },
      { exit_time: "2024-03-04T15:00:00Z", pnl_usd: 50 },
      { exit_time: "2024-03-06T15:00:00Z", pnl_usd: "NaN" },
      { pnl_usd: 1000 },
    ]);
    expect(eq.equity).toEqual([50, 30, 30]);
    expect(usage(-150, 200)).toBe(0.75);
    expect(usage(10, 0)).toBeNaN();
  });

  it("pattern markers are time-ordered, bullish below the bar, bearish above", () => {
    const m = patternMarkers([
      { name: "dark_cloud_cover", direction: "bearish", end: "2026-11-19T00:00:00Z" },
      { name: "hammer", direction: "bullish", end: "2026-11-12T00:00:00Z" },
    ]);
    expect(m.map((x) => [x.text, x.position, x.shape])).toEqual([
      ["hammer", "belowBar", "arrowUp"],
      ["dark cloud cover", "aboveBar", "arrowDown"],
    ]);
    expect(m[0].time).toBe(Date.UTC(2026, 10, 12) / 1000);
  });
});

describe("exchange clock", () => {
  it("shows New York time (EST in December, EDT in July)", async () => {
    const { nyClock } = await import("../src/lib/num");
    expect(nyClock("2026-12-04T14:32:00Z")).toBe("09:32:00 ET");
    expect(nyClock("2026-07-06T13:30:00Z")).toBe("09:30:00 ET");
    expect(nyClock(undefined)).toBe("–");
  });
});
