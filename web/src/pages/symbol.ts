// Symbol: 1-minute and daily candles, selectable indicators (TA-Lib names and parameters),
// detected candlestick and chart patterns marked on the chart, the latest quote, previous close.
import {
  CandlestickSeries,
  ColorType,
  HistogramSeries,
  LineSeries,
  createChart,
  createSeriesMarkers,
  type IChartApi,
  type SeriesMarker,
  type Time,
  type UTCTimestamp,
} from "lightweight-charts";
import { client, unwrap, type Msg } from "../lib/api";
import { card, clear, errorBox, h, table } from "../lib/dom";
import { fmt, num, shortTime, signed } from "../lib/num";
import { every, type Page } from "./page";

/** Indicators drawn over the candles (price units); the others get their own pane. */
export const OVERLAYS = new Set(["sma", "ema", "wma", "dema", "tema", "trima", "kama", "t3", "bbands", "vwap", "sar", "midpoint", "midprice"]);
const CHOICES = ["sma", "ema", "bbands", "vwap", "rsi", "macd", "stoch", "adx", "atr", "cci", "obv", "mfi"];
const BARS = { "1m": 390, "1d": 250 } as const;
const PATTERN_DAYS = { "1m": 5, "1d": 120 } as const; // the service allows 5..3650
const QUOTE_REFRESH_MS = 5_000;
const MAX_LABELS = 25; // more markers than this: arrows only (the table below names them)
const MAX_LEVELS = 4; // the strongest support/resistance levels inside the chart's price range
const COLORS = ["#f5a623", "#4a90e2", "#bd10e0", "#50e3c2", "#b8e986", "#e86a92", "#9b9b9b", "#f8e71c"];

const NY = "America/New_York";
const nyTime = new Intl.DateTimeFormat("en-US", { timeZone: NY, hour: "2-digit", minute: "2-digit", hour12: false });
const nyDay = new Intl.DateTimeFormat("en-US", { timeZone: NY, month: "short", day: "numeric" });
const nyFull = new Intl.DateTimeFormat("en-US", { timeZone: NY, year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hour12: false });
/** Chart times in New York (exchange) time: the axis and the crosshair label. */
export function nyLabel(t: Time, intraday: boolean, tick = false): string {
  const d = new Date(Number(t) * 1000);
  if (!intraday) return nyDay.format(d);
  return tick ? nyTime.format(d) : `${nyFull.format(d)} ET`;
}

export const toTime = (iso: string | undefined): UTCTimestamp => Math.floor(new Date(iso ?? 0).getTime() / 1000) as UTCTimestamp;

type Pattern = Msg<"aiots.v1.PatternMatch">;

/** Chart markers for detected patterns, in time order (lightweight-charts requires it). */
export function patternMarkers(patterns: Pattern[], labels = true): SeriesMarker<Time>[] {
  return patterns
    .map((p): SeriesMarker<Time> => {
      const bull = p.direction === "bullish";
      const bear = p.direction === "bearish";
      return {
        time: toTime(p.end),
        position: bear ? "aboveBar" : "belowBar",
        shape: bull ? "arrowUp" : bear ? "arrowDown" : "circle",
        color: bull ? "#26a69a" : bear ? "#ef5350" : "#9aa4b5",
        text: labels ? (p.name ?? "").replace(/_/g, " ") : "",
      };
    })
    .sort((a, b) => Number(a.time) - Number(b.time));
}

export const symbolPage: Page = {
  title: "Symbol",
  async render(root, ctx) {
    const symbols = await ctx.symbols();
    const symbol = ctx.params[0] ?? symbols[0] ?? "AAPL";
    const interval = (ctx.params[1] === "1m" ? "1m" : "1d") as keyof typeof BARS;
    const symSel = h("select", { "data-testid": "symbol" }, ...symbols.map((s) => h("option", { value: s, selected: s === symbol }, s)));
    const ivSel = h("select", { "data-testid": "interval" }, h("option", { value: "1d", selected: interval === "1d" }, "daily"), h("option", { value: "1m", selected: interval === "1m" }, "1 minute"));
    const go = (): void => ctx.navigate(`#/symbol/${encodeURIComponent(symSel.value)}/${ivSel.value}`);
    symSel.addEventListener("change", go);
    ivSel.addEventListener("change", go);

    const picked = new Set(["sma", "bbands", "rsi"]);
    const boxes = CHOICES.map((name) => {
      const cb = h("input", { type: "checkbox", value: name, checked: picked.has(name), "data-indicator": name });
      return h("label", { class: "chip" }, cb, name);
    });
    const extraIn = h("input", { placeholder: "more TA-Lib names: willr,roc", size: 18 });
    const periodIn = h("input", { type: "number", min: 0, max: 1000, value: 20, title: "period (0: each indicator's default)", style: "width:5em" });
    const paramsIn = h("input", { placeholder: "params: macd.fast=8, bbands.nbdev_up=2.5", size: 28 });
    const apply = h("button", { type: "button" }, "apply");

    const quoteBox = h("div", { class: "quote", "data-testid": "quote" }, "…");
    const chartEl = h("div", { class: "chart", "data-testid": "candles" });
    const info = h("div");
    const patternsBox = h("div");
    root.append(
      card(`${symbol} · ${interval === "1d" ? "daily" : "1-minute"}`, h("div", { class: "filters" }, symSel, ivSel, quoteBox)),
      card("Chart", h("div", { class: "filters" }, ...boxes, extraIn, h("label", {}, "period ", periodIn), paramsIn, apply), chartEl, info),
      card("Detected patterns", patternsBox),
    );

    async function quote(): Promise<void> {
      try {
        const r = await unwrap(client.GET("/api/v1/cache/stock-prices/{symbol}", { params: { path: { symbol } }, signal: ctx.signal }));
        const p = r.price ?? {};
        const up = num(p.change) >= 0;
        quoteBox.replaceChildren(
          h("b", { class: "last", "data-testid": "last" }, fmt(p.last)),
          h("span", { class: up ? "up" : "down" }, ` ${signed(p.change)} (${signed(p.change_pct)}%)`),
          h("span", { class: "muted" }, ` bid ${fmt(p.bid)} / ask ${fmt(p.ask)} · prev close `),
          h("span", { "data-testid": "prev-close" }, fmt(p.prev_close)),
          h("span", { class: "muted" }, ` · O ${fmt(p.open)} H ${fmt(p.high)} L ${fmt(p.low)} · vol ${fmt(p.volume, 0)} · ${shortTime(p.as_of)}`),
        );
      } catch (err) {
        quoteBox.replaceChildren(errorBox(err));
      }
    }
    void quote();
    every(QUOTE_REFRESH_MS, ctx, quote);

    let chart: IChartApi | null = null;
    ctx.signal.addEventListener("abort", () => chart?.remove());

    async function draw(): Promise<void> {
      chart?.remove();
      clear(info);
      const names = [...boxes.map((b) => b.querySelector("input") as HTMLInputElement).filter((i) => i.checked).map((i) => i.value), ...extraIn.value.split(",").map((s) => s.trim().toLowerCase()).filter(Boolean)];
      const params = paramsIn.value.split(",").map((s) => s.trim()).filter(Boolean);
      const [bars, inds, pats] = await Promise.allSettled([
        unwrap(client.GET("/api/v1/data/bars/{symbol}", { params: { path: { symbol }, query: { interval, limit: BARS[interval] } }, signal: ctx.signal })),
        names.length
          ? unwrap(
              client.GET("/api/v1/analytics/indicators/{symbol}", {
                params: { path: { symbol }, query: { indicators: names, interval, period: Number(periodIn.value) || 0, params, include_series: true, lookback: BARS[interval] } },
                signal: ctx.signal,
              }),
            )
          : Promise.resolve(null),
        unwrap(client.GET("/api/v1/analytics/patterns/{symbol}", { params: { path: { symbol }, query: { interval, days: PATTERN_DAYS[interval] } }, signal: ctx.signal })),
      ]);
      if (ctx.signal.aborted) return;
      if (bars.status === "rejected") {
        info.append(errorBox(bars.reason));
        return;
      }
      const data = (bars.value.bars ?? [])
        .map((b) => ({ time: toTime(b.ts), open: num(b.open), high: num(b.high), low: num(b.low), close: num(b.close), volume: num(b.volume) }))
        .filter((b) => Number.isFinite(b.close))
        .sort((a, b) => a.time - b.time);
      chart = createChart(chartEl, {
        autoSize: true,
        layout: { background: { type: ColorType.Solid, color: "#141923" }, textColor: "#d7dde8" },
        grid: { vertLines: { color: "#222a38" }, horzLines: { color: "#222a38" } },
        timeScale: {
          timeVisible: interval === "1m",
          secondsVisible: false,
          tickMarkFormatter: (t: Time, kind: number) => (interval === "1m" && kind >= 3 ? nyLabel(t, true, true) : nyLabel(t, false)),
        },
        localization: { timeFormatter: (t: Time) => nyLabel(t, interval === "1m") },
      });
      const candles = chart.addSeries(CandlestickSeries, { upColor: "#26a69a", downColor: "#ef5350", wickUpColor: "#26a69a", wickDownColor: "#ef5350", borderVisible: false });
      candles.setData(data);
      candles.priceScale().applyOptions({ scaleMargins: { top: 0.05, bottom: 0.22 } }); // room for volume
      const vol = chart.addSeries(HistogramSeries, { priceScaleId: "vol", priceFormat: { type: "volume" }, color: "#3a4356" });
      chart.priceScale("vol").applyOptions({ scaleMargins: { top: 0.82, bottom: 0 } });
      vol.setData(data.map((b) => ({ time: b.time, value: b.volume, color: b.close >= b.open ? "#1f5f59" : "#6b2d2c" })));

      if (inds.status === "fulfilled" && inds.value) {
        const ts = (inds.value.timestamps ?? []).map(toTime);
        let color = 0;
        let pane = 0;
        for (const r of inds.value.results ?? []) {
          const overlay = OVERLAYS.has((r.name ?? "").toLowerCase());
          if (!overlay) pane += 1;
          for (const out of r.outputs ?? []) {
            const pts = (out.series ?? []).map((v, i) => ({ time: ts[i], value: num(v) })).filter((p) => p.time !== undefined && Number.isFinite(p.value));
            const line = chart.addSeries(
              LineSeries,
              { color: COLORS[color++ % COLORS.length], lineWidth: 1, title: out.name === r.name ? (r.name ?? "") : `${r.name}.${out.name}`, priceLineVisible: false, lastValueVisible: true },
              overlay ? 0 : pane,
            );
            line.setData(pts);
          }
        }
        info.append(h("p", { class: "muted" }, `indicators over ${inds.value.bars ?? 0} bars (${inds.value.source ?? ""}), as of ${shortTime(inds.value.as_of)}`));
      } else if (inds.status === "rejected") {
        info.append(errorBox(inds.reason));
      }

      if (pats.status === "fulfilled") {
        const p = pats.value;
        const first = data.length ? data[0].time : 0;
        const onChart = (p.patterns ?? []).filter((x) => toTime(x.end) >= first);
        createSeriesMarkers(candles, patternMarkers(onChart, onChart.length <= MAX_LABELS));
        const lo = Math.min(...data.map((d) => d.low));
        const hi = Math.max(...data.map((d) => d.high));
        const levels = (p.levels ?? [])
          .filter((lv) => num(lv.price) >= lo && num(lv.price) <= hi)
          .sort((a, b) => num(b.strength) - num(a.strength))
          .slice(0, MAX_LEVELS);
        for (const lv of levels) {
          candles.createPriceLine({ price: num(lv.price), color: lv.kind === "support" ? "#26a69a" : "#ef5350", lineWidth: 1, lineStyle: 2, axisLabelVisible: true, title: `${lv.kind} ×${lv.touches}` });
        }
        const t = p.trend ?? {};
        clear(patternsBox);
        patternsBox.append(
          h("p", {}, `trend: ${t.direction ?? "?"} (slope ${fmt(t.slope, 4)}/bar, R² ${fmt(t.r_squared, 2)}, ADX ${fmt(t.adx, 1)}) · ${shortTime(p.start)} → ${shortTime(p.end)}`),
          (p.patterns ?? []).length
            ? table(
                ["pattern", "category", "direction", "start", "end", "strength"],
                [...(p.patterns ?? [])].reverse().map((x) => [(x.name ?? "").replace(/_/g, " "), x.category ?? "", x.direction ?? "", shortTime(x.start), shortTime(x.end), fmt(x.strength, 2)]),
                { "data-testid": "patterns-table" },
              )
            : h("p", { class: "muted" }, "No patterns detected in this window."),
        );
        if ((p.levels ?? []).length) {
          patternsBox.append(table(["level", "kind", "touches", "strength"], (p.levels ?? []).map((l) => [fmt(l.price), l.kind ?? "", String(l.touches ?? 0), fmt(l.strength, 2)])));
        }
      } else {
        clear(patternsBox);
        patternsBox.append(errorBox(pats.reason));
      }
      chart.timeScale().fitContent();
    }
    apply.addEventListener("click", () => void draw());
    for (const b of boxes) b.addEventListener("change", () => void draw());
    await draw();
  },
};
