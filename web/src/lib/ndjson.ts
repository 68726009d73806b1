// Newline-delimited JSON streams over fetch + ReadableStream (EventSource cannot send the
// Authorization header). followStream reconnects after a drop, asking the caller for the URL
// each time so that it carries the resume point (`since` = the last id received). A stream the
// server ends early (shutdown, a client too slow for its queue) sends a last line
// `{"error": google.rpc.Status}`: its message is shown, and its ErrorInfo names the resume point.
import { ApiError, errorMessage, reportAuthError } from "./api";

/** JSON values, one per line, from a byte stream (lines may be split anywhere, UTF-8 included). */
export async function* readNdjson(body: ReadableStream<Uint8Array>): AsyncGenerator<unknown> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) yield JSON.parse(line);
      }
    }
    buf += decoder.decode();
    if (buf.trim()) yield JSON.parse(buf);
  } finally {
    reader.releaseLock();
  }
}

export type StreamState =
  | { kind: "connecting"; attempt: number }
  | { kind: "live" }
  | { kind: "retrying"; inMs: number; reason: string; code?: number }
  | { kind: "stopped"; error?: ApiError };

export interface FollowOptions<T> {
  /** The URL to open now (called on every (re)connect: put the resume point in it). */
  url: () => string;
  headers: () => Record<string, string>;
  onMessage: (msg: T) => void;
  onState?: (s: StreamState) => void;
  /** The server's last line on a stream it ended early, before any reconnect (take its resume point). */
  onEnd?: (end: StreamEnd) => void;
  signal: AbortSignal;
  method?: "GET" | "POST";
  body?: unknown;
  /** Reconnect after the stream ends (live streams); false for a finite stream (a backtest run). */
  reconnect?: boolean;
  retryDelaysMs?: number[];
  fetchImpl?: typeof fetch;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

export const DEFAULT_RETRY_MS = [500, 1000, 2000, 5000, 10000];

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    });
  });
}

/** Why the server ended a stream: a google.rpc code, its message and where to resume. */
export interface StreamEnd {
  code?: number;
  message: string;
  /** The request fields to resume with (e.g. `{since: "01J..."}`), from the ErrorInfo detail. */
  resume: Record<string, string>;
}

const ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo";

/** The stream's final error line (`{"error": {"code", "message", "details"}}`), if this is one. */
export function streamEnd(msg: unknown): StreamEnd | null {
  if (!msg || typeof msg !== "object" || !("error" in msg)) return null;
  const e = (msg as { error: unknown }).error;
  if (!e || typeof e !== "object") return null;
  const st = e as { code?: number; message?: string; details?: { "@type"?: string; metadata?: Record<string, string> }[] };
  const info = (st.details ?? []).find((d) => d["@type"] === ERROR_INFO);
  return { code: st.code, message: st.message ?? "stream error", resume: { ...(info?.metadata ?? {}) } };
}

/**
 * Follow a stream until `signal` aborts. 401/403 stop it (a new token is needed, retrying cannot
 * help); other failures and drops reconnect with backoff (429: after its retry-after).
 */
export async function followStream<T>(o: FollowOptions<T>): Promise<void> {
  const doFetch = o.fetchImpl ?? fetch;
  const sleep = o.sleep ?? abortableSleep;
  const delays = o.retryDelaysMs ?? DEFAULT_RETRY_MS;
  const reconnect = o.reconnect ?? true;
  let attempt = 0;
  while (!o.signal.aborted) {
    o.onState?.({ kind: "connecting", attempt });
    let reason = "stream ended";
    let failure: ApiError | undefined;
    let waitMs: number | undefined;
    let code: number | undefined;
    try {
      const res = await doFetch(o.url(), {
        method: o.method ?? "GET",
        headers: { ...o.headers(), ...(o.body !== undefined ? { "Content-Type": "application/json" } : {}) },
        body: o.body !== undefined ? JSON.stringify(o.body) : undefined,
        signal: o.signal,
      });
      if (!res.ok || !res.body) {
        const text = await res.text();
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          /* plain text */
        }
        const err = new ApiError(res.status, errorMessage(res.status, parsed, res.statusText));
        if (err.isAuth || (res.status >= 400 && res.status < 500 && res.status !== 429)) {
          reportAuthError(err);
          o.onState?.({ kind: "stopped", error: err });
          return;
        }
        reason = `${res.status}: ${err.message}`;
        failure = err;
        const ra = Number(res.headers.get("retry-after"));
        if (res.status === 429 && ra > 0) waitMs = ra * 1000;
      } else {
        o.onState?.({ kind: "live" });
        attempt = 0;
        for await (const msg of readNdjson(res.body)) {
          const end = streamEnd(msg);
          if (end) {
            reason = end.message;
            code = end.code;
            failure = new ApiError(200, reason, end.code);
            o.onEnd?.(end);
            break;
          }
          o.onMessage(msg as T);
        }
      }
    } catch (exc) {
      if (o.signal.aborted) break;
      reason = exc instanceof Error ? exc.message : String(exc);
      failure = new ApiError(0, reason);
    }
    if (o.signal.aborted) break;
    if (!reconnect) {
      o.onState?.({ kind: "stopped", error: failure });
      return;
    }
    const inMs = waitMs ?? delays[Math.min(attempt, delays.length - 1)];
    attempt += 1;
    o.onState?.({ kind: "retrying", inMs, reason, code });
    await sleep(inMs, o.signal);
  }
  o.onState?.({ kind: "stopped" });
}
