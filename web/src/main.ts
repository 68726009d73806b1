import "./style.css";
import { ApiError, client, onAuthError, setTokenSource, unwrap } from "./lib/api";
import { Session, captureToken, secondsLeft } from "./lib/auth";
import { clear, h } from "./lib/dom";
import type { Ctx, Page } from "./pages/page";
import { backtestsPage } from "./pages/backtests";
import { chainPage } from "./pages/chain";
import { portfolioPage } from "./pages/portfolio";
import { signalsPage } from "./pages/signals";
import { symbolPage } from "./pages/symbol";

const PAGES: Record<string, Page> = {
  signals: signalsPage,
  symbol: symbolPage,
  chain: chainPage,
  portfolio: portfolioPage,
  backtests: backtestsPage,
};
const FALLBACK_SYMBOLS = ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA", "SPY", "QQQ"];

const session = new Session(captureToken());
setTokenSource(() => session.token);

const notice = document.getElementById("notice") as HTMLElement;
function showNotice(text: string, kind: "auth" | "info" = "auth"): void {
  notice.hidden = false;
  notice.className = `notice ${kind}`;
  notice.textContent = text;
}

/** One clear message for 401/403, with the gateway's reason. */
export function authMessage(err: ApiError): string {
  if (err.status === 401) {
    return (
      `Not signed in (401): ${err.message}. Open the link 'aiots up' printed, or get a token with ` +
      `'.venv/bin/aiots token --role trader --ttl 1h' and open /#token=<token>.`
    );
  }
  return `Not allowed (403): ${err.message}. Signed in as ${session.subject} (${session.role}).`;
}
onAuthError((err) => showNotice(authMessage(err)));

function renderWho(): void {
  const who = document.getElementById("who") as HTMLElement;
  if (!session.token) {
    who.textContent = "no token";
    return;
  }
  const left = secondsLeft(session.claims);
  const mins = left === null ? "" : left <= 0 ? " · expired" : ` · ${Math.floor(left / 60)} min left`;
  who.replaceChildren(
    h("span", { class: "subject", "data-testid": "subject" }, session.subject),
    " ",
    h("span", { class: `role role-${session.role}`, "data-testid": "role" }, session.role),
    mins,
  );
}

let symbolsCache: Promise<string[]> | null = null;
function symbols(): Promise<string[]> {
  symbolsCache ??= unwrap(client.GET("/api/v1/data/collection/status"))
    .then((r) => {
      const s = [...new Set((r.streams ?? []).map((x) => x.symbol ?? "").filter(Boolean))].sort();
      return s.length ? s : FALLBACK_SYMBOLS;
    })
    .catch(() => FALLBACK_SYMBOLS);
  return symbolsCache;
}

function renderNav(active: string): void {
  const nav = document.getElementById("nav") as HTMLElement;
  nav.replaceChildren(
    ...Object.entries(PAGES).map(([key, p]) =>
      h("a", { href: `#/${key}`, class: key === active ? "active" : "", "data-page": key }, p.title),
    ),
  );
}

let current: AbortController | null = null;
async function route(): Promise<void> {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  const key = parts[0] && parts[0] in PAGES ? parts[0] : "signals";
  current?.abort();
  current = new AbortController();
  renderNav(key);
  const app = document.getElementById("app") as HTMLElement;
  clear(app);
  app.dataset.page = key;
  if (!session.token) {
    showNotice(
      "No token: open the one-click link 'aiots up' printed (http://127.0.0.1:8000/#token=...), or run " +
        "'.venv/bin/aiots token --role viewer --ttl 1h' and open /#token=<token>.",
    );
    return;
  }
  const ctx: Ctx = { session, signal: current.signal, params: parts.slice(1), symbols, navigate };
  document.title = `${PAGES[key].title} · AI-OTS`;
  try {
    await PAGES[key].render(app, ctx);
  } catch (err) {
    if (!ctx.signal.aborted) app.append(h("div", { class: "error", role: "alert" }, String(err)));
  }
}

function navigate(hash: string): void {
  if (location.hash === hash) void route();
  else location.hash = hash;
}

window.addEventListener("hashchange", () => void route());
renderWho();
void route();
