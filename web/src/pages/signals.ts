// Signals: the live stream (resumes with `since` after a drop), status updates, filters, each
// signal's reasons, levels and outcome; running statistics with calibration.
import { authHeaders, buildUrl, client, unwrap, type Msg, type StreamMessage, type StreamQuery } from "../lib/api";
import { card, clear, errorBox, h, table } from "../lib/dom";
import { followStream, type StreamState } from "../lib/ndjson";
import { fmt, num, nyClock, pct, shortTime, signed } from "../lib/num";
import { calibrationChart } from "../lib/plots";
import { every, type Ctx, type Page } from "./page";

type Signal = Msg<"aiots.v1.Signal">;
const SUBSCRIBE = "/api/v1/signals/subscribe" as const;
const MAX_ROWS = 200;
const STATS_REFRESH_MS = 30_000;
const POLL_MS = 5_000;

export const short = (e: string | undefined, prefix: string): string => (e ?? "").replace(prefix, "").toLowerCase();

/** Newest first; an update replaces the signal with the same id (status, outcome, history). */
export function mergeSignal(list: Signal[], s: Signal, max = MAX_ROWS): Signal[] {
  const rest = list.filter((x) => x.id !== s.id);
  const out = [s, ...rest].sort((a, b) => ((a.id ?? "") < (b.id ?? "") ? 1 : -1));
  return out.slice(0, max);
}

function stateText(s: StreamState): string {
  switch (s.kind) {
    case "connecting":
      return s.attempt ? `reconnecting (try ${s.attempt + 1})…` : "connecting…";
    case "live":
      return "live";
    case "retrying":
      return `dropped (${s.reason}); resuming in ${(s.inMs / 1000).toFixed(1)} s`;
    case "stopped":
      return s.error ? `stopped: ${s.error.status} ${s.error.message}` : "stopped";
  }
}

function details(s: Signal): HTMLElement {
  const reasons = (s.reasons ?? []).map((r) => [r.indicator ?? "", fmt(r.value, 3), fmt(r.threshold, 3), r.description ?? ""]);
  const history = (s.history ?? []).map((c) => [shortTime(c.at), short(c.status, "SIGNAL_STATUS_"), fmt(c.option_price), c.note ?? ""]);
  const g = s.greeks ?? {};
  return h(
    "div",
    { class: "details" },
    h(
      "div",
      { class: "kv" },
      h("span", {}, `underlying ${fmt(s.underlying_price)}`),
      h("span", {}, `bid/ask ${fmt(s.bid)} / ${fmt(s.ask)}`),
      h("span", {}, `IV ${pct(s.iv)} · IV rank ${fmt(s.iv_rank, 0)}`),
      h("span", {}, `entry ${fmt(s.entry_price)} · target ${fmt(s.target_price)} · stop ${fmt(s.stop_price)}`),
      h("span", {}, `reward/risk ${fmt(s.reward_risk)} · risk/contract $${fmt(s.risk_per_contract)}`),
      h("span", {}, `expected ${signed(s.expected_return_pct)}% · p(model) ${pct(s.p_model)} · evidence ${fmt(s.evidence, 2)}`),
      h("span", {}, `Δ ${fmt(g.delta, 3)} Γ ${fmt(g.gamma, 4)} Θ ${fmt(g.theta, 3)} V ${fmt(g.vega, 3)}`),
      h("span", {}, `size ${s.suggested_contracts ?? 0} · horizon ${shortTime(s.horizon)}`),
    ),
    reasons.length ? table(["reason", "value", "threshold", "why"], reasons) : h("p", {}, "no reasons given"),
    history.length ? table(["at", "status", "option price", "note"], history) : null,
    s.outcome?.exit_time
      ? h("p", {}, `outcome: exit ${fmt(s.outcome.exit_price)} at ${shortTime(s.outcome.exit_time)}, ${signed(s.outcome.pnl_pct)}%`)
      : null,
  );
}

function rows(list: Signal[], statusFilter: string, open: Set<string>, toggle: (id: string) => void): HTMLElement {
  const shown = list.filter((s) => !statusFilter || short(s.status, "SIGNAL_STATUS_") === statusFilter);
  if (!shown.length) return h("p", { class: "muted", "data-testid": "no-signals" }, "No signals yet: they appear here as the strategies fire.");
  const tbody = h("tbody");
  for (const s of shown) {
    const id = s.id ?? "";
    const dir = short(s.direction, "DIRECTION_");
    const status = short(s.status, "SIGNAL_STATUS_");
    tbody.append(
      h(
        "tr",
        { class: `signal ${dir}`, "data-signal-id": id, onclick: () => toggle(id) },
        h("td", { title: shortTime(s.created_at) }, nyClock(s.created_at)),
        h("td", {}, h("b", {}, s.symbol ?? "")),
        h("td", {}, s.strategy ?? ""),
        h("td", { class: dir }, dir),
        h("td", { class: "mono" }, s.contract?.occ_symbol ?? ""),
        h("td", {}, pct(s.confidence, 0)),
        h("td", {}, `${fmt(s.entry_price)} → ${fmt(s.target_price)} / ${fmt(s.stop_price)}`),
        h("td", {}, h("span", { class: `badge ${status}` }, status)),
        h("td", {}, s.outcome?.exit_time ? `${signed(s.outcome.pnl_pct)}%` : "–"),
      ),
    );
    if (open.has(id)) tbody.append(h("tr", { class: "detail-row" }, h("td", { colspan: 9 }, details(s))));
  }
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "signals", "data-testid": "signals-table" },
      h("thead", {}, h("tr", {}, ...["time", "symbol", "strategy", "dir", "contract", "conf", "entry → target / stop", "status", "P&L"].map((c) => h("th", {}, c)))),
      tbody,
    ),
  );
}

async function renderStats(box: HTMLElement, ctx: Ctx, symbols: string[]): Promise<void> {
  try {
    const r = await unwrap(client.GET("/api/v1/signal-stats", { params: { query: { symbols } }, signal: ctx.signal }));
    const c = r.calibration ?? {};
    const statRows = (r.rows ?? []).map((x) => [
      x.symbol ?? "",
      x.strategy ?? "",
      x.total ?? "0",
      x.open ?? "0",
      x.target_hit ?? "0",
      x.stopped ?? "0",
      x.expired ?? "0",
      `${pct(x.hit_rate, 0)} [${pct(x.hit_rate_ci_low, 0)}, ${pct(x.hit_rate_ci_high, 0)}]`,
      pct(x.mean_confidence, 0),
      `${signed(x.avg_pnl_pct)}%`,
      `${signed(x.expectancy_pct)}%`,
    ]);
    const plot = h("div", { class: "plot small", "data-testid": "calibration-plot" });
    clear(box);
    box.append(
      h("p", { class: "kv" }, `Brier ${fmt(c.brier, 3)} (base rate ${fmt(c.brier_base_rate, 3)}) · ECE ${fmt(c.ece, 3)} · base rate ${pct(c.base_rate, 0)}`),
      statRows.length
        ? table(["symbol", "strategy", "total", "open", "target", "stopped", "expired", "hit rate [95% CI]", "mean conf", "avg P&L", "expectancy"], statRows)
        : h("p", { class: "muted" }, "No closed signals yet."),
      plot,
    );
    const bins = (c.bins ?? []).map((b) => ({ predicted: num(b.predicted), realised: num(b.realised), count: num(b.count) }));
    if (bins.length) await calibrationChart(plot, bins, "Calibration: predicted vs realised hit rate");
    else plot.append(h("p", { class: "muted" }, "Calibration needs closed signals."));
  } catch (err) {
    clear(box);
    box.append(errorBox(err));
  }
}

export const signalsPage: Page = {
  title: "Signals",
  async render(root, ctx) {
    const all = await ctx.symbols();
    const symSel = h("select", { "data-testid": "filter-symbol" }, h("option", { value: "" }, "all symbols"), ...all.map((s) => h("option", { value: s }, s)));
    const stratIn = h("input", { placeholder: "strategy (blank: all)", size: 16, "data-testid": "filter-strategy" });
    const confIn = h("input", { type: "number", min: 0, max: 1, step: 0.05, value: 0, "data-testid": "filter-confidence" });
    const statusSel = h(
      "select",
      { "data-testid": "filter-status" },
      h("option", { value: "" }, "any status"),
      ...["open", "target_hit", "stopped", "expired", "cancelled"].map((s) => h("option", { value: s }, s)),
    );
    const state = h("span", { class: "stream-state", "data-testid": "stream-state" }, "…");
    const listBox = h("div");
    const statsBox = h("div", {}, "loading…");
    root.append(
      card("Live signals", h("div", { class: "filters" }, symSel, stratIn, h("label", {}, "min conf ", confIn), statusSel, state), listBox),
      card("Running statistics", statsBox),
    );

    let list: Signal[] = [];
    const open = new Set<string>();
    const redraw = (): void => listBox.replaceChildren(rows(list, statusSel.value, open, toggle));
    function toggle(id: string): void {
      if (open.has(id)) open.delete(id);
      else open.add(id);
      redraw();
    }
    statusSel.addEventListener("change", redraw);

    let streamCtl: AbortController | null = null;
    async function start(): Promise<void> {
      streamCtl?.abort();
      const ctl = new AbortController();
      streamCtl = ctl;
      ctx.signal.addEventListener("abort", () => ctl.abort());
      const symbols = symSel.value ? [symSel.value] : [];
      const strategies = stratIn.value.trim() ? [stratIn.value.trim()] : [];
      const minConf = Number(confIn.value) || 0;
      list = [];
      redraw();
      const startedAt = new Date().toISOString();
      try {
        const recent = await unwrap(
          client.GET("/api/v1/signals", {
            params: { query: { symbols, strategies, min_confidence: minConf || undefined, "page.page_size": 50 } },
            signal: ctl.signal,
          }),
        );
        for (const s of recent.signals ?? []) list = mergeSignal(list, s);
        redraw();
      } catch (err) {
        if (ctl.signal.aborted) return;
        listBox.prepend(errorBox(err));
      }
      if (!ctx.session.can("trader")) {
        // SubscribeSignals needs the trader role (the gateway's role table): a viewer polls
        state.textContent = `viewer: refreshed every ${POLL_MS / 1000} s (the live stream needs the trader role)`;
        const poll = async (): Promise<void> => {
          if (ctl.signal.aborted) return;
          try {
            const r = await unwrap(
              client.GET("/api/v1/signals", {
                params: { query: { symbols, strategies, min_confidence: minConf || undefined, "page.page_size": 50 } },
                signal: ctl.signal,
              }),
            );
            for (const s of r.signals ?? []) list = mergeSignal(list, s);
            redraw();
          } catch {
            /* shown on the next successful poll or by the auth notice */
          }
        };
        const t = setInterval(() => void poll(), POLL_MS);
        ctl.signal.addEventListener("abort", () => clearInterval(t));
        return;
      }
      // resume point: the newest id seen (ULIDs sort by time), else the time the list was read
      let since = list.length ? (list[0].id ?? startedAt) : startedAt;
      const query = (): StreamQuery<typeof SUBSCRIBE> => ({
        symbols,
        strategies,
        min_confidence: minConf || undefined,
        include_updates: true,
        since,
      });
      void followStream<StreamMessage<typeof SUBSCRIBE>>({
        url: () => buildUrl(SUBSCRIBE, {}, query()),
        headers: authHeaders,
        signal: ctl.signal,
        onState: (s) => {
          state.textContent = stateText(s);
          state.dataset.state = s.kind;
        },
        onEnd: (end) => {
          const at = end.resume.since; // the last signal id this stream delivered
          if (at && at > since) since = at;
        },
        onMessage: (m) => {
          const s = m.signal ?? m.update;
          if (!s) return; // heartbeat
          if (m.signal && s.id && s.id > since) since = s.id;
          list = mergeSignal(list, s);
          redraw();
        },
      });
    }
    for (const el of [symSel, stratIn, confIn]) el.addEventListener("change", () => void start());
    await start();
    const stats = (): Promise<void> => renderStats(statsBox, ctx, symSel.value ? [symSel.value] : []);
    void stats();
    every(STATS_REFRESH_MS, ctx, stats);
  },
};
