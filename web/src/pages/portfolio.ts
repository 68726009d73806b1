// Portfolio: accounts, positions, P&L, Greeks, risk-limit usage, orders with a buy/sell form
// (trader role) and the live watch stream.
import { authHeaders, buildUrl, client, unwrap, type Msg, type StreamMessage } from "../lib/api";
import { card, clear, errorBox, h, table } from "../lib/dom";
import { followStream } from "../lib/ndjson";
import { fmt, num, shortTime, signed } from "../lib/num";
import { every, type Ctx, type Page } from "./page";

type Account = Msg<"aiots.v1.Account">;
const WATCH = "/api/v1/portfolio/accounts/{account_id}/watch" as const;
const POLL_MS = 5_000; // viewers cannot open the watch stream (trader): they poll
const WATCH_LOG = 30;

/** Share of a limit used, 0..1+ (NaN without a limit). */
export function usage(current: number, limit: number): number {
  return limit > 0 && Number.isFinite(limit) ? Math.abs(current) / limit : NaN;
}

function limitBars(a: Account): HTMLElement {
  const states = a.limit_states ?? [];
  if (!states.length) return h("p", { class: "muted" }, "No risk limits set.");
  return h(
    "div",
    { class: "limits", "data-testid": "limits" },
    ...states.map((s) => {
      const u = usage(num(s.current), num(s.limit));
      const w = Number.isFinite(u) ? Math.min(100, u * 100) : 0;
      return h(
        "div",
        { class: `limit ${s.breached ? "breached" : ""}` },
        h("span", {}, (s.name ?? "").replace(/_/g, " ")),
        h("div", { class: "bar" }, h("div", { class: "fill", style: `width:${w.toFixed(1)}%` })),
        h("span", {}, `${fmt(s.current)} / ${fmt(s.limit)}${Number.isFinite(u) ? ` (${(u * 100).toFixed(0)}%)` : ""}`),
      );
    }),
  );
}

function summary(a: Account): HTMLElement {
  const g = a.greeks ?? {};
  return h(
    "div",
    {},
    h(
      "div",
      { class: "kv big", "data-testid": "account-summary" },
      h("span", {}, `equity $${fmt(a.equity)}`),
      h("span", {}, `cash $${fmt(a.cash)}`),
      h("span", {}, `market value $${fmt(a.market_value)}`),
      h("span", { class: num(a.day_pnl) >= 0 ? "up" : "down" }, `day ${signed(a.day_pnl)}`),
      h("span", {}, `realised ${signed(a.realized_pnl)} · unrealised ${signed(a.unrealized_pnl)}`),
      a.buys_halted ? h("span", { class: "down" }, "buys halted (daily loss limit)") : null,
    ),
    h(
      "div",
      { class: "kv" },
      h("span", {}, `$Δ ${fmt(g.dollar_delta, 0)}`),
      h("span", {}, `Δ shares ${fmt(g.delta_shares, 1)}`),
      h("span", {}, `β-weighted Δ ${fmt(g.beta_weighted_delta, 1)}`),
      h("span", {}, `Γ per 1% ${fmt(g.gamma_1pct, 0)}`),
      h("span", {}, `vega/pt ${fmt(g.vega)}`),
      h("span", {}, `θ/day ${fmt(g.theta)}`),
    ),
    limitBars(a),
    (a.by_underlying ?? []).length
      ? table(
          ["underlying", "positions", "β", "$Δ", "vega", "θ"],
          (a.by_underlying ?? []).map((u) => [u.underlying ?? "", String(u.open_positions ?? 0), fmt(u.beta), fmt(u.greeks?.dollar_delta, 0), fmt(u.greeks?.vega), fmt(u.greeks?.theta)]),
        )
      : null,
  );
}

function positions(a: Account): HTMLElement {
  const ps = a.positions ?? [];
  if (!ps.length) return h("p", { class: "muted", "data-testid": "no-positions" }, "No open positions.");
  return table(
    ["contract", "qty", "avg", "bid/ask", "mark", "IV", "value", "unrealised", "$Δ", "θ", "quote"],
    ps.map((p) => [
      h("span", { class: "mono" }, p.contract ?? ""),
      p.quantity ?? "0",
      fmt(p.average_price),
      `${fmt(p.bid)} / ${fmt(p.ask)}`,
      fmt(p.mark),
      fmt(num(p.iv) * 100, 1),
      fmt(p.market_value),
      h("span", { class: num(p.unrealized_pnl) >= 0 ? "up" : "down" }, signed(p.unrealized_pnl)),
      fmt(p.greeks?.dollar_delta, 0),
      fmt(p.greeks?.theta),
      shortTime(p.quote_time).slice(11),
    ]),
    { "data-testid": "positions-table" },
  );
}

async function orders(box: HTMLElement, id: string, ctx: Ctx): Promise<void> {
  try {
    const r = await unwrap(client.GET("/api/v1/portfolio/accounts/{account_id}/orders", { params: { path: { account_id: id }, query: { limit: 50 } }, signal: ctx.signal }));
    const os = r.orders ?? [];
    box.replaceChildren(
      os.length
        ? table(
            ["filled", "side", "qty", "contract", "fill", "bid/ask", "fees", "realised", "status", "source"],
            os.map((o) => [shortTime(o.filled_at), o.side ?? "", o.quantity ?? "", h("span", { class: "mono" }, o.contract ?? ""), fmt(o.fill_price), `${fmt(o.bid)} / ${fmt(o.ask)}`, fmt(o.fees), signed(o.realized_pnl), o.status ?? "", o.source ?? ""]),
            { "data-testid": "orders-table" },
          )
        : h("p", { class: "muted" }, "No orders yet."),
    );
  } catch (err) {
    box.replaceChildren(errorBox(err));
  }
}

function orderForm(id: string, ctx: Ctx, done: () => void): HTMLElement {
  const contract = h("input", { name: "contract", placeholder: "OCC symbol, e.g. AAPL  261218C00230000", size: 26, required: true, list: "occ-list", "data-testid": "order-contract" });
  const side = h("select", { name: "side", "data-testid": "order-side" }, h("option", { value: "BUY" }, "buy"), h("option", { value: "SELL" }, "sell"));
  const qty = h("input", { name: "quantity", type: "number", min: 1, step: 1, value: 1, style: "width:5em", "data-testid": "order-qty" });
  const limit = h("input", { name: "limit", type: "number", min: 0, step: 0.01, placeholder: "limit (blank: market)", style: "width:10em" });
  const result = h("span", { class: "order-result", "data-testid": "order-result" });
  const datalist = h("datalist", { id: "occ-list" });
  const pickSym = h("input", { placeholder: "symbol for suggestions", size: 8 });
  pickSym.addEventListener("change", async () => {
    const symbol = pickSym.value.trim().toUpperCase();
    if (!symbol) return;
    try {
      const c = await unwrap(client.GET("/api/v1/analytics/options/{symbol}/chain", { params: { path: { symbol } }, signal: ctx.signal }));
      datalist.replaceChildren(...(c.contracts ?? []).filter((q) => num(q.bid) > 0).map((q) => h("option", { value: q.contract?.occ_symbol ?? "" }, `${fmt(q.bid)} / ${fmt(q.ask)}`)));
    } catch (err) {
      result.replaceChildren(errorBox(err));
    }
  });
  const form = h(
    "form",
    { class: "filters order-form", "data-testid": "order-form" },
    side,
    qty,
    contract,
    datalist,
    limit,
    pickSym,
    h("button", { type: "submit" }, "place order"),
    result,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    result.textContent = "sending…";
    try {
      const r = await unwrap(
        client.POST("/api/v1/portfolio/accounts/{account_id}/orders", {
          params: { path: { account_id: id } },
          body: {
            client_order_id: crypto.randomUUID(),
            contract: contract.value.trim(),
            side: side.value,
            quantity: Number(qty.value),
            limit_price: limit.value ? Number(limit.value) : undefined,
          },
        }),
      );
      const o = r.order ?? {};
      result.textContent = `${o.side} ${o.quantity} ${o.contract} filled at ${fmt(o.fill_price)} (${o.status})`;
      done();
    } catch (err) {
      result.replaceChildren(errorBox(err));
    }
  });
  return form;
}

export const portfolioPage: Page = {
  title: "Portfolio",
  async render(root, ctx) {
    const trader = ctx.session.can("trader");
    const accSel = h("select", { "data-testid": "account" });
    const createBox = trader
      ? (() => {
          const name = h("input", { placeholder: "new account name", size: 14, "data-testid": "new-account-name" });
          const cash = h("input", { type: "number", min: 1, value: 100000, style: "width:8em", "data-testid": "new-account-cash" });
          const f = h("form", { class: "filters", "data-testid": "create-account" }, name, cash, h("button", { type: "submit" }, "open account"));
          f.addEventListener("submit", async (e) => {
            e.preventDefault();
            try {
              const r = await unwrap(client.POST("/api/v1/portfolio/accounts", { body: { name: name.value.trim() || "paper", cash: Number(cash.value) } }));
              ctx.navigate(`#/portfolio/${r.account?.id ?? ""}`);
            } catch (err) {
              f.append(errorBox(err));
            }
          });
          return f;
        })()
      : h("p", { class: "muted" }, "Viewer role: read only (a trader token can open accounts and trade).");
    const body = h("div");
    root.append(card("Accounts", h("div", { class: "filters" }, accSel), createBox), body);

    const list = await unwrap(client.GET("/api/v1/portfolio/accounts", { signal: ctx.signal }));
    const accounts = list.accounts ?? [];
    if (!accounts.length) {
      body.append(card("Account", h("p", { class: "muted", "data-testid": "no-accounts" }, "No paper accounts yet for this subject.")));
      return;
    }
    const id = ctx.params[0] && accounts.some((a) => a.id === ctx.params[0]) ? ctx.params[0] : (accounts[0].id ?? "");
    accSel.replaceChildren(...accounts.map((a) => h("option", { value: a.id ?? "", selected: a.id === id }, `${a.name} · $${fmt(a.equity, 0)}`)));
    accSel.addEventListener("change", () => ctx.navigate(`#/portfolio/${accSel.value}`));

    const sumBox = h("div");
    const posBox = h("div");
    const ordBox = h("div");
    const watchLog = h("ol", { class: "log", "data-testid": "watch-log" });
    const watchState = h("span", { class: "stream-state", "data-testid": "watch-state" });
    body.append(
      card("Account", sumBox),
      card("Positions", posBox),
      card("Orders", trader ? orderForm(id, ctx, () => void refresh()) : h("p", { class: "muted" }, "Trading needs the trader role."), ordBox),
      card("Live (watch stream)", watchState, watchLog),
    );

    async function refresh(): Promise<void> {
      try {
        const r = await unwrap(client.GET("/api/v1/portfolio/accounts/{account_id}", { params: { path: { account_id: id } }, signal: ctx.signal }));
        const a = r.account ?? {};
        sumBox.replaceChildren(summary(a));
        posBox.replaceChildren(positions(a));
      } catch (err) {
        clear(sumBox);
        sumBox.append(errorBox(err));
      }
      await orders(ordBox, id, ctx);
    }
    await refresh();

    if (!trader) {
      watchState.textContent = "the watch stream needs the trader role; refreshing every 5 s";
      every(POLL_MS, ctx, refresh);
      return;
    }
    let since = "";
    void followStream<StreamMessage<typeof WATCH>>({
      url: () => buildUrl(WATCH, { account_id: id }, { since }),
      headers: authHeaders,
      signal: ctx.signal,
      onState: (s) => {
        watchState.textContent = s.kind === "retrying" ? `dropped (${s.reason}); resuming` : s.kind;
        watchState.dataset.state = s.kind;
      },
      onEnd: (end) => {
        if (end.resume.since) since = end.resume.since; // the server's word on where to resume
      },
      onMessage: (m) => {
        if (m.seq && m.seq !== "0") since = m.seq;
        let text = "";
        if (m.fill) {
          text = `fill: ${m.fill.side} ${m.fill.quantity} ${m.fill.contract} at ${fmt(m.fill.fill_price)}`;
          void refresh();
        } else if (m.limit) {
          text = `limit ${m.limit.name}: ${m.limit.message}`;
        } else if (m.mark) {
          text = `mark: equity ${fmt(m.mark.equity)} · unrealised ${signed(m.mark.unrealized_pnl)} · $Δ ${fmt(m.mark.greeks?.dollar_delta, 0)}`;
          posBox.replaceChildren(positions({ positions: m.mark.positions }));
        }
        if (!text) return;
        watchLog.prepend(h("li", {}, `${shortTime(m.at).slice(11)} ${text}`));
        while (watchLog.children.length > WATCH_LOG) watchLog.lastElementChild?.remove();
      },
    });
  },
};
