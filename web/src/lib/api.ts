// Typed REST client: paths, parameters and bodies come from src/api/schema.d.ts, which is
// generated from the contract (scripts/gen-api.mjs); nothing here restates a message by hand.
import createClient from "openapi-fetch";
import type { components, paths } from "../api/schema";

export type Schemas = components["schemas"];
export type Msg<N extends keyof Schemas> = Schemas[N];
export type RpcStatus = Schemas["google.rpc.Status"];

/** An error answer: the HTTP status and the gateway's (or service's) JSON message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code?: number,
  ) {
    super(message);
    this.name = "ApiError";
  }
  get isAuth(): boolean {
    return this.status === 401 || this.status === 403;
  }
}

type Listener = (err: ApiError) => void;
const listeners: Listener[] = [];
/** Called for every 401/403 any call gets (the page shows one clear message). */
export function onAuthError(fn: Listener): void {
  listeners.push(fn);
}
export function reportAuthError(err: ApiError): void {
  if (err.isAuth) listeners.forEach((fn) => fn(err));
}

let currentToken: () => string | null = () => null;
export function setTokenSource(fn: () => string | null): void {
  currentToken = fn;
}
export function authHeaders(): Record<string, string> {
  const t = currentToken();
  return t ? { Authorization: `Bearer ${t}` } : {};
}

export const client = createClient<paths>({ baseUrl: typeof location === "undefined" ? "" : location.origin });
client.use({
  onRequest({ request }) {
    for (const [k, v] of Object.entries(authHeaders())) request.headers.set(k, v);
    return request;
  },
});

/** The message of an error body (google.rpc.Status JSON), else the HTTP status text. */
export function errorMessage(status: number, body: unknown, fallback = ""): string {
  if (body && typeof body === "object" && "message" in body && typeof (body as RpcStatus).message === "string") {
    return (body as RpcStatus).message as string;
  }
  if (typeof body === "string" && body.trim()) return body.trim().slice(0, 500);
  return fallback || `HTTP ${status}`;
}

/** The data of an openapi-fetch result, or an ApiError (401/403 are also reported). */
export async function unwrap<T>(p: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  const { data, error, response } = await p;
  if (response.ok && data !== undefined) return data;
  const body = error as RpcStatus | undefined;
  const err = new ApiError(response.status, errorMessage(response.status, body, response.statusText), body?.code);
  reportAuthError(err);
  throw err;
}

// ---- streaming RPCs (NDJSON): their paths, query parameters and message types from the contract

type Op<P extends keyof paths, M extends "get" | "post"> = NonNullable<paths[P][M]>;
type OkJson<O> = O extends { responses: { 200: { content: { "application/json": infer T } } } } ? T : never;
type Query<O> = O extends { parameters: { query?: infer Q } } ? NonNullable<Q> : never;
type Body<O> = O extends { requestBody?: { content: { "application/json": infer B } } } ? B : never;

export type StreamGetPath =
  | "/api/v1/signals/subscribe"
  | "/api/v1/portfolio/accounts/{account_id}/watch"
  | "/api/v1/prices/watch";
export type StreamMessage<P extends StreamGetPath> = OkJson<Op<P, "get">>;
export type StreamQuery<P extends StreamGetPath> = Query<Op<P, "get">>;
export type BacktestRequest = Body<Op<"/api/v1/backtests", "post">>;
export type BacktestMessage = OkJson<Op<"/api/v1/backtests", "post">>;

/** `path` with `{param}`s filled and the query string (arrays repeat the parameter). */
export function buildUrl(path: string, pathParams: Record<string, string> = {}, query: Record<string, unknown> = {}): string {
  const filled = path.replace(/\{([^}]+)\}/g, (_, k: string) => encodeURIComponent(pathParams[k] ?? ""));
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null || v === "") continue;
    for (const item of Array.isArray(v) ? v : [v]) qs.append(k, String(item));
  }
  const s = qs.toString();
  return s ? `${filled}?${s}` : filled;
}
