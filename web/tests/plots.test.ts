import { describe, expect, it } from "vitest";
import { onceRetrying } from "../src/lib/plots";

describe("Plotly's lazy import", () => {
  it("imports once, and retries after a failed import instead of caching the failure", async () => {
    let calls = 0;
    const load = onceRetrying(async () => {
      calls += 1;
      if (calls === 1) throw new Error("chunk load failed");
      return { react: "plotly" };
    });
    await expect(load()).rejects.toThrow("chunk load failed");
    await expect(load()).resolves.toEqual({ react: "plotly" });
    await load();
    expect(calls).toBe(2); // the success is kept: no third import
  });
});
