// The JWT the page's API calls send. It arrives in the URL fragment (`/#token=...`: a fragment is
// never sent to a server, so it is in no access log), is kept in sessionStorage (gone with the
// tab), and the fragment is removed from the address bar at once.

export const STORAGE_KEY = "aiots.token";
export type Role = "viewer" | "trader" | "admin";
const ROLE_ORDER: Role[] = ["viewer", "trader", "admin"];

export interface Claims {
  sub?: string;
  role?: string;
  exp?: number;
  iss?: string;
  aud?: string | string[];
  [k: string]: unknown;
}

/** The payload of a JWT, decoded without verifying it (the gateway verifies; this is for display). */
export function decodeJwt(token: string): Claims | null {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = b64 + "=".repeat((4 - (b64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    const claims: unknown = JSON.parse(new TextDecoder().decode(bytes));
    return claims !== null && typeof claims === "object" && !Array.isArray(claims) ? (claims as Claims) : null;
  } catch {
    return null;
  }
}

/** `token` from a fragment like `#token=abc&page=chain` (null when absent). */
export function tokenFromFragment(hash: string): string | null {
  const params = new URLSearchParams(hash.replace(/^#/, ""));
  const t = params.get("token");
  return t && t.trim() ? t.trim() : null;
}

/**
 * Take the token from the address bar into sessionStorage and strip it from the URL (kept in the
 * address bar it would land in history, bookmarks and screenshots). Returns the token in use.
 */
export function captureToken(loc: Location = location, hist: History = history, store: Storage = sessionStorage): string | null {
  const fromUrl = tokenFromFragment(loc.hash);
  if (fromUrl) {
    store.setItem(STORAGE_KEY, fromUrl);
    const params = new URLSearchParams(loc.hash.replace(/^#/, ""));
    const page = params.get("page");
    hist.replaceState(null, "", `${loc.pathname}${loc.search}#/${page ?? "signals"}`);
  }
  return store.getItem(STORAGE_KEY);
}

export function roleAtLeast(role: string | undefined, needed: Role): boolean {
  const have = ROLE_ORDER.indexOf(role as Role);
  return have >= 0 && have >= ROLE_ORDER.indexOf(needed);
}

/** Seconds until `exp` (negative: expired; null: no exp claim). */
export function secondsLeft(claims: Claims | null, nowMs: number = Date.now()): number | null {
  return claims && typeof claims.exp === "number" ? claims.exp - nowMs / 1000 : null;
}

export class Session {
  readonly claims: Claims | null;
  constructor(readonly token: string | null) {
    this.claims = token ? decodeJwt(token) : null;
  }
  get subject(): string {
    return typeof this.claims?.sub === "string" ? this.claims.sub : "?";
  }
  get role(): string {
    return typeof this.claims?.role === "string" ? this.claims.role : "?";
  }
  can(needed: Role): boolean {
    return roleAtLeast(this.claims?.role, needed);
  }
}
