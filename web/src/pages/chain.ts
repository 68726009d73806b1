// Chain: expiries; bid/ask/IV/Greeks per contract (with the exclusions and the exercise style and
// model used); the smile per expiry with the fitted SVI; term structure; max pain; put/call
// ratio; gamma exposure by strike.
import { client, unwrap, type Msg } from "../lib/api";
import { card, errorBox, h, table } from "../lib/dom";
import { fmt, num, pct, shortTime } from "../lib/num";
import { plot } from "../lib/plots";
import type { Data } from "plotly.js-dist-min";
import { sviCurve, type SviParams } from "../lib/svi";
import type { Page } from "./page";

type Quote = Msg<"aiots.v1.OptionQuote">;
type Slice = Msg<"aiots.v1.SviSlice">;
type Exclusion = Msg<"aiots.v1.ExclusionCount">;
const SMILE_K = 0.35; // |ln(K/F)| drawn for the fitted curve

export const right = (q: Quote): "call" | "put" => (q.contract?.right === "OPTION_RIGHT_PUT" ? "put" : "call");
export const style = (s: string | undefined): string => (s ?? "").replace("EXERCISE_STYLE_", "").toLowerCase();

export function exclusions(list: Exclusion[] | undefined): string {
  return (list ?? []).length ? (list ?? []).map((e) => `${(e.reason ?? "").toLowerCase().replace(/_/g, " ")} ${e.count}`).join(" · ") : "none";
}

/** The SVI parameters of a slice that has a fit, else null. */
export function sviOf(s: Slice | undefined): SviParams | null {
  if (!s || s.status !== "OK") return null;
  const p = { a: num(s.a), b: num(s.b), rho: num(s.rho), m: num(s.m), sigma: num(s.sigma), t: num(s.t) };
  return Object.values(p).every(Number.isFinite) ? p : null;
}

/** One row per contract, the way the table shows it (also what the browser test compares). */
export function chainRows(quotes: Quote[]): string[][] {
  return [...quotes]
    .sort((a, b) => num(a.contract?.strike) - num(b.contract?.strike) || right(a).localeCompare(right(b)))
    .map((q) => {
      const g = q.greeks ?? {};
      return [
        q.contract?.occ_symbol ?? "",
        right(q),
        fmt(q.contract?.strike),
        fmt(q.bid),
        fmt(q.ask),
        pct(q.iv, 1),
        fmt(g.delta, 3),
        fmt(g.gamma, 4),
        fmt(g.theta, 3),
        fmt(g.vega, 3),
        fmt(q.open_interest, 0),
        fmt(q.volume, 0),
        (q.iv_reason ?? "").toLowerCase().replace(/_/g, " ") || q.price_source || "",
      ];
    });
}

export const chainPage: Page = {
  title: "Chain",
  async render(root, ctx) {
    const symbols = await ctx.symbols();
    const symbol = ctx.params[0] ?? symbols[0] ?? "AAPL";
    const symSel = h("select", { "data-testid": "symbol" }, ...symbols.map((s) => h("option", { value: s, selected: s === symbol }, s)));
    symSel.addEventListener("change", () => ctx.navigate(`#/chain/${encodeURIComponent(symSel.value)}`));
    const head = h("div", { class: "filters" }, symSel, "loading…");
    root.append(card(`${symbol} options`, head));

    const [oa, surf] = await Promise.allSettled([
      unwrap(client.GET("/api/v1/analytics/options/{symbol}", { params: { path: { symbol } }, signal: ctx.signal })),
      unwrap(client.GET("/api/v1/analytics/vol-surface/{symbol}", { params: { path: { symbol } }, signal: ctx.signal })),
    ]);
    if (oa.status === "rejected") {
      head.replaceChildren(symSel, errorBox(oa.reason));
      return;
    }
    const a = oa.value;
    const expiries = (a.expiries ?? []).map((e) => e.expiry ?? "").filter(Boolean);
    const expiry = ctx.params[1] && expiries.includes(ctx.params[1]) ? ctx.params[1] : (expiries.find((_, i) => i === 1) ?? expiries[0] ?? "");
    const expSel = h("select", { "data-testid": "expiry" }, ...expiries.map((e) => h("option", { value: e, selected: e === expiry }, e)));
    expSel.addEventListener("change", () => ctx.navigate(`#/chain/${encodeURIComponent(symbol)}/${expSel.value}`));
    head.replaceChildren(
      symSel,
      expSel,
      h(
        "span",
        { class: "kv" },
        h("span", {}, `spot ${fmt(a.underlying_price)}`),
        h("span", { "data-testid": "style" }, `${style(a.exercise_style)} · ${a.pricing_model ?? ""}`),
        h("span", {}, `IV rank ${fmt(a.iv_rank, 0)} · pct ${fmt(a.iv_percentile, 0)} (${a.iv_history_days ?? 0} d)`),
        h("span", { "data-testid": "pcr" }, `put/call OI ${fmt(a.put_call_oi_ratio, 2)} · volume ${fmt(a.put_call_volume_ratio, 2)}`),
        h("span", {}, `GEX ${fmt(a.total_gex, 0)} · DEX ${fmt(a.total_dex, 0)} · zero-γ ${fmt(a.zero_gamma_level)}`),
        h("span", { class: "muted" }, `as of ${shortTime(a.as_of)}${a.spot_in_sync ? "" : ` · spot lag ${fmt(a.spot_lag_seconds, 0)} s`}`),
      ),
    );

    const ex = (a.expiries ?? []).find((e) => e.expiry === expiry);
    const slices = surf.status === "fulfilled" ? (surf.value.slices ?? []) : [];
    const slice = slices.find((s) => s.expiry === expiry);
    const smileEl = h("div", { class: "plot", "data-testid": "smile" });
    const termEl = h("div", { class: "plot small", "data-testid": "term" });
    const gexEl = h("div", { class: "plot small", "data-testid": "gex" });
    const chainBox = h("div", {}, "loading chain…");
    root.append(
      card(
        `Expiry ${expiry}`,
        ex
          ? h(
              "div",
              { class: "kv" },
              h("span", {}, `DTE ${fmt(ex.dte, 1)}`),
              h("span", {}, `ATM IV ${pct(ex.atm_iv)}`),
              h("span", {}, `RR25 ${pct(ex.rr25)} · BF25 ${pct(ex.bf25)}`),
              h("span", {}, `move ±${fmt(ex.expected_move_straddle)} (straddle) / ±${fmt(ex.expected_move_iv)} (IV)`),
              h("span", { "data-testid": "max-pain" }, `max pain ${fmt(ex.max_pain)}`),
              h("span", {}, `forward ${fmt(ex.forward)} (${ex.forward_source ?? ""}) · q ${pct(ex.implied_dividend_yield, 2)}`),
              h("span", { "data-testid": "exclusions" }, `excluded: ${exclusions(ex.excluded)} · used ${ex.quotes_used ?? 0}`),
              slice ? h("span", {}, `SVI ${slice.status}${slice.reason ? ` (${slice.reason})` : ""} · ${slice.points ?? 0} pts · rmse ${fmt(slice.rmse_vol_points, 2)} vol pts`) : null,
            )
          : h("p", { class: "muted" }, "no analytics for this expiry"),
        h("div", { class: "grid2" }, smileEl, h("div", {}, termEl, gexEl)),
      ),
      card("Chain", chainBox),
    );

    try {
      const c = await unwrap(client.GET("/api/v1/analytics/options/{symbol}/chain", { params: { path: { symbol }, query: { expiry } }, signal: ctx.signal }));
      const quotes = (c.contracts ?? []).filter((q) => q.contract?.expiry === expiry);
      chainBox.replaceChildren(
        h("p", { class: "muted" }, `${quotes.length} contracts · ${style(c.exercise_style)} exercise, ${c.pricing_model ?? ""} · excluded ${exclusions(c.excluded)} · as of ${shortTime(c.as_of)}`),
        table(["contract", "right", "strike", "bid", "ask", "IV", "Δ", "Γ", "Θ", "vega", "OI", "vol", "IV note"], chainRows(quotes), { class: "chain", "data-testid": "chain-table" }),
      );
      // smile: quoted IVs and the fitted SVI curve at this expiry's forward
      const fwd = num(ex?.forward) || num(c.underlying_price);
      const data: Data[] = (["call", "put"] as const).map((r) => {
        const qs = quotes.filter((q) => right(q) === r && Number.isFinite(num(q.iv)));
        return { x: qs.map((q) => num(q.contract?.strike)), y: qs.map((q) => num(q.iv)), mode: "markers", name: `${r} IV`, marker: { color: r === "call" ? "#26a69a" : "#ef5350" } };
      });
      const svi = sviOf(slice);
      const strikes = quotes.filter((q) => Number.isFinite(num(q.iv))).map((q) => num(q.contract?.strike));
      if (svi && Number.isFinite(fwd) && strikes.length) {
        // over the quoted strikes only (within ±SMILE_K): no extrapolation past the data
        const kLo = Math.max(-SMILE_K, Math.log(Math.min(...strikes) / fwd));
        const kHi = Math.min(SMILE_K, Math.log(Math.max(...strikes) / fwd));
        const curve = sviCurve(svi, fwd, kLo, kHi);
        data.push({ x: curve.map((p) => p[0]), y: curve.map((p) => p[1]), mode: "lines", name: `fitted ${slice?.parametrization || "SVI"}`, line: { color: "#f5a623" } });
      }
      await plot(smileEl, data, {
        title: { text: `Smile ${expiry}` },
        xaxis: { title: { text: "strike" } },
        yaxis: { title: { text: "implied vol" }, tickformat: ".0%" },
        shapes: Number.isFinite(fwd) ? [{ type: "line", x0: fwd, x1: fwd, yref: "paper", y0: 0, y1: 1, line: { dash: "dot", color: "#667" } }] : [],
      });
    } catch (err) {
      chainBox.replaceChildren(errorBox(err));
    }
    const term = (a.expiries ?? []).filter((e) => Number.isFinite(num(e.atm_iv)));
    await plot(termEl, [{ x: term.map((e) => num(e.dte)), y: term.map((e) => num(e.atm_iv)), text: term.map((e) => e.expiry ?? ""), mode: "lines+markers", name: "ATM IV" }], {
      title: { text: "Term structure (ATM IV)" },
      xaxis: { title: { text: "days to expiry" } },
      yaxis: { tickformat: ".1%" },
      showlegend: false,
    });
    const exp = a.exposures ?? [];
    await plot(gexEl, [{ type: "bar", x: exp.map((e) => num(e.strike)), y: exp.map((e) => num(e.gex)), marker: { color: exp.map((e) => (num(e.gex) >= 0 ? "#26a69a" : "#ef5350")) }, name: "GEX" }], {
      title: { text: "GEX by strike ($ per 1% move)" },
      xaxis: { title: { text: "strike" } },
      showlegend: false,
      shapes: Number.isFinite(num(a.underlying_price)) ? [{ type: "line", x0: num(a.underlying_price), x1: num(a.underlying_price), yref: "paper", y0: 0, y1: 1, line: { dash: "dot", color: "#667" } }] : [],
    });
  },
};
