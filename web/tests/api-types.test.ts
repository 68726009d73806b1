// The committed API types must be what the generator makes from the current contract today:
// a .proto change without `npm run gen:api` fails here.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { SPEC_FILE, TYPES_FILE, generate } from "../scripts/gen-api.mjs";

describe("generated API types", () => {
  it("are fresh (run `cd web && npm run gen:api` when this fails)", async () => {
    const { spec, types } = (await generate()) as { spec: string; types: string };
    expect(readFileSync(SPEC_FILE, "utf8"), "src/api/openapi.json is stale").toBe(spec);
    expect(readFileSync(TYPES_FILE, "utf8"), "src/api/schema.d.ts is stale").toBe(types);
  });

  it("cover every streaming path the pages open", () => {
    const types = readFileSync(TYPES_FILE, "utf8");
    for (const p of ["/api/v1/signals/subscribe", "/api/v1/portfolio/accounts/{account_id}/watch", "/api/v1/backtests"]) {
      expect(types).toContain(`"${p}": {`);
    }
  });
});
