import type { Session } from "../lib/auth";

export interface Ctx {
  session: Session;
  /** Aborted when the user leaves the page (streams and timers stop). */
  signal: AbortSignal;
  /** Hash path segments after the page name (#/symbol/AAPL -> ["AAPL"]). */
  params: string[];
  symbols: () => Promise<string[]>;
  navigate: (hash: string) => void;
}

export interface Page {
  title: string;
  render(root: HTMLElement, ctx: Ctx): void | Promise<void>;
}

/** Repeat `fn` every `ms` until the page is left. */
export function every(ms: number, ctx: Ctx, fn: () => void | Promise<void>): void {
  const t = setInterval(() => void fn(), ms);
  ctx.signal.addEventListener("abort", () => clearInterval(t));
}
