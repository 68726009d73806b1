// Numbers as the gateway prints them (proto3 JSON): doubles are numbers or the strings
// "NaN"/"Infinity"/"-Infinity"; int64 values are decimal strings.

export type JsonNumber = number | string | null | undefined;

/** A proto3-JSON number as a JS number (NaN when absent or not a number). */
export function num(x: JsonNumber): number {
  if (typeof x === "number") return x;
  if (typeof x !== "string" || x.trim() === "") return NaN;
  if (x === "Infinity") return Infinity;
  if (x === "-Infinity") return -Infinity;
  const v = Number(x);
  return Number.isNaN(v) ? NaN : v;
}

/** Fixed decimals; "–" for NaN/absent. */
export function fmt(x: JsonNumber, digits = 2): string {
  const v = num(x);
  if (!Number.isFinite(v)) return Number.isNaN(v) ? "–" : v > 0 ? "∞" : "-∞";
  return v.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function pct(x: JsonNumber, digits = 1, scale = 100): string {
  const v = num(x);
  return Number.isFinite(v) ? `${(v * scale).toFixed(digits)}%` : "–";
}

/** Signed, with a leading + for gains. */
export function signed(x: JsonNumber, digits = 2): string {
  const v = num(x);
  return Number.isFinite(v) ? `${v > 0 ? "+" : ""}${fmt(v, digits)}` : "–";
}

export function shortTime(iso: string | undefined): string {
  if (!iso) return "–";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toISOString().replace("T", " ").slice(0, 19) + "Z";
}

const NY_CLOCK = new Intl.DateTimeFormat("en-US", { timeZone: "America/New_York", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
/** Wall-clock time on the exchange (New York), e.g. "09:45:00 ET". */
export function nyClock(iso: string | undefined): string {
  if (!iso) return "–";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : `${NY_CLOCK.format(d)} ET`;
}
