import { describe, expect, it } from "vitest";
import { STORAGE_KEY, Session, captureToken, decodeJwt, roleAtLeast, secondsLeft, tokenFromFragment } from "../src/lib/auth";

// A token assembled by hand: header/payload are base64url of known JSON (RFC 7515 section 2), the
// signature is irrelevant to decoding. The payload holds a non-ASCII subject to exercise UTF-8.
const b64url = (s: string): string => Buffer.from(s, "utf8").toString("base64").replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const payload = { sub: "zoë@desk", role: "trader", exp: 2_000_000_000, iss: "aiots-dev", aud: "aiots" };
const TOKEN = `${b64url('{"alg":"RS256","typ":"JWT"}')}.${b64url(JSON.stringify(payload))}.c2ln`;

describe("decodeJwt", () => {
  it("returns the payload claims", () => {
    expect(decodeJwt(TOKEN)).toEqual(payload);
  });
  it("is null for anything that is not three base64url JSON parts", () => {
    expect(decodeJwt("abc")).toBeNull();
    expect(decodeJwt("a.b.c")).toBeNull();
    expect(decodeJwt(`x.${b64url("[1,2]")}.y`)).toBeNull();
  });
});

describe("token from the fragment", () => {
  it("reads #token= and ignores other fragments", () => {
    expect(tokenFromFragment(`#token=${TOKEN}`)).toBe(TOKEN);
    expect(tokenFromFragment(`#token=${TOKEN}&page=chain`)).toBe(TOKEN);
    expect(tokenFromFragment("#/signals")).toBeNull();
    expect(tokenFromFragment("")).toBeNull();
  });

  it("moves it to sessionStorage and removes it from the address bar", () => {
    history.replaceState(null, "", `/#token=${TOKEN}&page=chain`);
    sessionStorage.clear();
    expect(captureToken()).toBe(TOKEN);
    expect(sessionStorage.getItem(STORAGE_KEY)).toBe(TOKEN);
    expect(location.href).not.toContain(TOKEN);
    expect(location.hash).toBe("#/chain");
    // a reload (no fragment) keeps the stored token
    expect(captureToken()).toBe(TOKEN);
  });
});

describe("roles and expiry", () => {
  it("orders viewer < trader < admin", () => {
    expect(roleAtLeast("trader", "viewer")).toBe(true);
    expect(roleAtLeast("trader", "trader")).toBe(true);
    expect(roleAtLeast("trader", "admin")).toBe(false);
    expect(roleAtLeast("viewer", "trader")).toBe(false);
    expect(roleAtLeast("root", "viewer")).toBe(false);
    expect(roleAtLeast(undefined, "viewer")).toBe(false);
  });
  it("shows subject and role, and the time left", () => {
    const s = new Session(TOKEN);
    expect([s.subject, s.role, s.can("trader"), s.can("admin")]).toEqual(["zoë@desk", "trader", true, false]);
    expect(secondsLeft(s.claims, 1_999_999_000 * 1000)).toBe(1000);
    expect(new Session(null).subject).toBe("?");
  });
});
