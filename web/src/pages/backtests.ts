// Backtests: start a run (POST /api/v1/backtests streams NDJSON progress, then the stored run),
// list stored runs, read a report: equity curve, calibration diagram, per-strategy table.
// The report is free JSON in the contract (google.protobuf.Struct, REPORT_VERSION in
// services/backtest/api.py); it is read defensively here, field by field.
import { authHeaders, buildUrl, client, unwrap, type BacktestMessage, type BacktestRequest, type Msg } from "../lib/api";
import { card, errorBox, h, table } from "../lib/dom";
import { followStream } from "../lib/ndjson";
import { fmt, num, pct, shortTime, signed, type JsonNumber } from "../lib/num";
import { calibrationChart, plot } from "../lib/plots";
import type { Ctx, Page } from "./page";

type Run = Msg<"aiots.v1.BacktestRun">;
type Obj = Record<string, unknown>;
const RUN_PATH = "/api/v1/backtests" as const;
export const DEFAULT_BARS = "ohlcv/NVDA_1m_2024-03-01_2024-03-14.csv";

const obj = (x: unknown): Obj => (x && typeof x === "object" && !Array.isArray(x) ? (x as Obj) : {});
const arr = (x: unknown): unknown[] => (Array.isArray(x) ? x : []);
const n = (x: unknown): JsonNumber => (typeof x === "number" || typeof x === "string" ? x : null);

/** Cumulative P&L (USD) of a one-contract-per-signal account, in exit order. */
export function equityCurve(trades: unknown[]): { t: string[]; equity: number[] } {
  const rows = trades.map(obj).filter((r) => typeof r.exit_time === "string");
  rows.sort((a, b) => String(a.exit_time).localeCompare(String(b.exit_time)));
  let eq = 0;
  const t: string[] = [];
  const equity: number[] = [];
  for (const r of rows) {
    const v = num(n(r.pnl_usd));
    eq += Number.isFinite(v) ? v : 0;
    t.push(String(r.exit_time));
    equity.push(eq);
  }
  return { t, equity };
}

async function showReport(box: HTMLElement, run: Run): Promise<void> {
  const rep = obj(run.report);
  const inputs = obj(rep.inputs);
  const summary = obj(rep.summary);
  const cal = obj(rep.calibration);
  const eqEl = h("div", { class: "plot", "data-testid": "equity" });
  const calEl = h("div", { class: "plot small", "data-testid": "report-calibration" });
  const summaryRows = Object.entries(summary).map(([pf, s0]) => {
    const s = obj(s0);
    return [pf, String(s.signals ?? ""), String(s.n ?? ""), pct(n(s.hit_rate), 0), `${signed(n(s.expectancy_pct))}%`, `$${fmt(n(s.total_pnl_usd))}`, fmt(n(s.profit_factor)), `$${fmt(n(s.max_drawdown_usd))}`];
  });
  const strat = arr(rep.by_strategy).map(obj);
  box.replaceChildren(
    h("p", { class: "muted" }, `run ${run.id} · ${shortTime(run.created_at)} · ${fmt(run.elapsed_s, 1)} s · ${run.trades ?? 0} trades · bars ${arr(inputs.bars).join(", ")} · ${inputs.from ?? "start"} → ${inputs.to ?? "end"} · seed ${inputs.seed ?? ""}`),
    summaryRows.length ? table(["priced from", "signals", "closed", "hit rate", "expectancy", "total P&L", "profit factor", "max DD"], summaryRows) : h("p", {}, "No trades."),
    h("div", { class: "grid2" }, eqEl, calEl),
    h("h3", {}, "Per strategy"),
    strat.length
      ? table(
          ["strategy", "priced from", "signals", "closed", "hit rate [95% CI]", "win rate", "expectancy", "total P&L", "max DD"],
          strat.map((s) => {
            const ci = arr(s.hit_rate_ci);
            return [String(s.strategy ?? ""), String(s.priced_from ?? ""), String(s.signals ?? ""), String(s.n ?? ""), `${pct(n(s.hit_rate), 0)} [${pct(n(ci[0]), 0)}, ${pct(n(ci[1]), 0)}]`, pct(n(s.win_rate), 0), `${signed(n(s.expectancy_pct))}%`, `$${fmt(n(s.total_pnl_usd))}`, `$${fmt(n(s.max_drawdown_usd))}`];
          }),
          { "data-testid": "strategy-table" },
        )
      : h("p", { class: "muted" }, "No strategy fired."),
  );
  const eq = equityCurve(arr(rep.trades));
  // by closed trade, not by clock time: nights and weekends would be long flat segments
  await plot(
    eqEl,
    [{ x: eq.equity.map((_, i) => i + 1), y: eq.equity, text: eq.t, mode: "lines+markers", name: "equity", line: { color: "#4a90e2" } }],
    { title: { text: "Equity, one contract per signal (USD)" }, xaxis: { title: { text: "closed trade #" } }, showlegend: false },
  );
  const bins = arr(cal.bins).map(obj).map((b) => ({ predicted: num(n(b.predicted)), realised: num(n(b.realised)), count: num(n(b.n)) }));
  await calibrationChart(calEl, bins, `Calibration (${cal.priced_from ?? ""}): Brier ${fmt(n(cal.brier), 3)}, ECE ${fmt(n(cal.ece), 3)}`);
}

function runForm(ctx: Ctx, progress: HTMLElement): HTMLElement {
  const bars = h("input", { value: DEFAULT_BARS, size: 40, "data-testid": "bt-bars", title: "bar files (comma-separated), relative to the service's data roots" });
  const symbols = h("input", { placeholder: "symbols (blank: all)", size: 12 });
  const from = h("input", { type: "date", value: "" });
  const to = h("input", { type: "date", value: "2024-03-08" });
  const seed = h("input", { type: "number", value: 1, style: "width:5em" });
  const form = h("form", { class: "filters", "data-testid": "bt-form" }, bars, symbols, h("label", {}, "from ", from), h("label", {}, "to ", to), h("label", {}, "seed ", seed), h("button", { type: "submit" }, "run"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const body: BacktestRequest = {
      bars: bars.value.split(",").map((s) => s.trim()).filter(Boolean),
      symbols: symbols.value.split(",").map((s) => s.trim().toUpperCase()).filter(Boolean),
      from_date: from.value,
      to_date: to.value,
      seed: String(Number(seed.value) || 0),
    };
    const bar = h("progress", { max: 1, value: 0 });
    const label = h("span", { "data-testid": "bt-progress" }, "starting…");
    progress.replaceChildren(bar, " ", label);
    void followStream<BacktestMessage>({
      url: () => buildUrl(RUN_PATH),
      method: "POST",
      body,
      reconnect: false,
      headers: authHeaders,
      signal: ctx.signal,
      onState: (s) => {
        if (s.kind === "stopped" && s.error) progress.replaceChildren(errorBox(s.error));
      },
      onMessage: (m) => {
        if (m.progress) {
          const done = num(m.progress.done);
          const total = num(m.progress.total);
          bar.max = total > 0 ? total : 1;
          bar.value = total > 0 ? done : 0;
          label.textContent = `${m.progress.stage}: ${done} / ${total}`;
        } else if (m.result) {
          label.textContent = `done: run ${m.result.id}`;
          ctx.navigate(`#/backtests/${m.result.id}`);
        }
      },
    });
  });
  return form;
}

export const backtestsPage: Page = {
  title: "Backtests",
  async render(root, ctx) {
    const progress = h("div", { class: "progress" });
    const listBox = h("div");
    const reportBox = h("div", {}, h("p", { class: "muted" }, "Pick a stored run, or start one."));
    root.append(
      card("Run a backtest", ctx.session.can("trader") ? runForm(ctx, progress) : h("p", { class: "muted" }, "Starting runs needs the trader role; stored reports are readable."), progress),
      card("Stored runs", listBox),
      card("Report", reportBox),
    );
    try {
      const r = await unwrap(client.GET("/api/v1/backtests", { params: { query: { limit: 20 } }, signal: ctx.signal }));
      const runs = r.runs ?? [];
      listBox.replaceChildren(
        runs.length
          ? table(
              ["run", "created", "bars", "symbols", "trades", "elapsed"],
              runs.map((x) => [h("a", { href: `#/backtests/${x.id}` }, (x.id ?? "").slice(0, 12)), shortTime(x.created_at), (x.request?.bars ?? []).join(", "), (x.request?.symbols ?? []).join(", ") || "all", x.trades ?? "0", `${fmt(x.elapsed_s, 1)} s`]),
              { "data-testid": "runs-table" },
            )
          : h("p", { class: "muted", "data-testid": "no-runs" }, "No stored runs."),
      );
      const id = ctx.params[0] ?? runs[0]?.id;
      if (id) {
        const g = await unwrap(client.GET("/api/v1/backtests/{id}", { params: { path: { id } }, signal: ctx.signal }));
        if (g.run) await showReport(reportBox, g.run);
      }
    } catch (err) {
      reportBox.replaceChildren(errorBox(err));
    }
  },
};
