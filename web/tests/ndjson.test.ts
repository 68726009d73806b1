import { describe, expect, it } from "vitest";
import { ApiError } from "../src/lib/api";
import { followStream, readNdjson, streamEnd, type StreamEnd, type StreamState } from "../src/lib/ndjson";

const enc = new TextEncoder();

/** A body that delivers exactly these byte chunks, then ends (or fails, as a dropped connection). */
function body(chunks: Uint8Array[], fail?: Error): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream({
    pull(ctl) {
      if (i < chunks.length) ctl.enqueue(chunks[i++]);
      else if (fail) ctl.error(fail);
      else ctl.close();
    },
  });
}

async function collect(s: ReadableStream<Uint8Array>): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const v of readNdjson(s)) out.push(v);
  return out;
}

describe("readNdjson", () => {
  it("splits lines across arbitrary chunk borders, multi-byte UTF-8 included", async () => {
    const text = '{"a":1}\n{"name":"café ∆"}\n\n{"b":[1,2]}';
    const bytes = enc.encode(text);
    // every possible single split point, one of them inside the 2-byte é and the 3-byte ∆
    for (let cut = 1; cut < bytes.length; cut++) {
      const got = await collect(body([bytes.slice(0, cut), bytes.slice(cut)]));
      expect(got).toEqual([{ a: 1 }, { name: "café ∆" }, { b: [1, 2] }]);
    }
  });
});

function response(status: number, chunks: string[], fail?: Error, headers: Record<string, string> = {}): Response {
  return new Response(body(chunks.map((c) => enc.encode(c)), fail), { status, headers });
}

describe("followStream", () => {
  it("resumes after a drop with the last id as since, without losing or repeating messages", async () => {
    const urls: string[] = [];
    const got: string[] = [];
    const ctl = new AbortController();
    let since = "";
    const answers = [
      () => response(200, ['{"signal":{"id":"01A"}}\n', '{"heartbeat":{}}\n{"signal":{"id":"01B"}}\n'], new TypeError("network error")),
      () => response(200, ['{"signal":{"id":"01C"}}\n']),
    ];
    const fetchImpl = (async (url: string) => {
      urls.push(url);
      const next = answers.shift();
      if (!next) {
        ctl.abort();
        throw new DOMException("aborted", "AbortError");
      }
      return next();
    }) as unknown as typeof fetch;
    const states: StreamState["kind"][] = [];
    await followStream<{ signal?: { id: string } }>({
      url: () => `/api/v1/signals/subscribe${since ? `?since=${since}` : ""}`,
      headers: () => ({ Authorization: "Bearer t" }),
      onMessage: (m) => {
        if (m.signal) {
          got.push(m.signal.id);
          since = m.signal.id;
        }
      },
      onState: (s) => states.push(s.kind),
      signal: ctl.signal,
      fetchImpl,
      sleep: async () => undefined,
    });
    expect(got).toEqual(["01A", "01B", "01C"]);
    expect(urls).toEqual(["/api/v1/signals/subscribe", "/api/v1/signals/subscribe?since=01B", "/api/v1/signals/subscribe?since=01C"]);
    expect(states).toContain("retrying");
  });

  it("stops on 401 with the gateway's message instead of retrying", async () => {
    let calls = 0;
    let final: StreamState | undefined;
    const msg = "Jwt is expired. Send 'Authorization: Bearer <token>'";
    await followStream({
      url: () => "/x",
      headers: () => ({}),
      onMessage: () => undefined,
      onState: (s) => (final = s),
      signal: new AbortController().signal,
      fetchImpl: (async () => {
        calls += 1;
        return new Response(JSON.stringify({ code: 16, message: msg, details: [] }), { status: 401 });
      }) as unknown as typeof fetch,
      sleep: async () => undefined,
    });
    expect(calls).toBe(1);
    expect(final?.kind).toBe("stopped");
    const err = (final as { error?: ApiError }).error;
    expect(err?.status).toBe(401);
    expect(err?.message).toBe(msg);
  });

  it("waits retry-after on 429", async () => {
    const waits: number[] = [];
    const ctl = new AbortController();
    let calls = 0;
    await followStream({
      url: () => "/x",
      headers: () => ({}),
      onMessage: () => undefined,
      signal: ctl.signal,
      fetchImpl: (async () => {
        calls += 1;
        if (calls > 1) ctl.abort();
        return new Response('{"code":8,"message":"local_rate_limited"}', { status: 429, headers: { "retry-after": "2" } });
      }) as unknown as typeof fetch,
      sleep: async (ms) => void waits.push(ms),
    });
    expect(waits[0]).toBe(2000);
  });

  it("shows the server's final error line and resumes where it says", async () => {
    // the line the gateway prints when a service stops gracefully mid-stream (issue 18)
    const trailer = {
      error: {
        code: 14,
        message: "the server is shutting down; resume with since=01B",
        details: [{ "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason: "SHUTTING_DOWN", domain: "aiots.v1", metadata: { since: "01B" } }],
      },
    };
    const urls: string[] = [];
    const ctl = new AbortController();
    let since = "";
    const ends: StreamEnd[] = [];
    const states: StreamState[] = [];
    const answers = [
      () => response(200, ['{"signal":{"id":"01A"}}\n', `${JSON.stringify(trailer)}\n`]),
      () => response(200, ['{"signal":{"id":"01C"}}\n']),
    ];
    const got: unknown[] = [];
    await followStream<{ signal?: { id: string } }>({
      url: () => `/s${since ? `?since=${since}` : ""}`,
      headers: () => ({}),
      onMessage: (m) => void got.push(m),
      onEnd: (e) => {
        ends.push(e);
        since = e.resume.since ?? since;
      },
      onState: (s) => void states.push(s),
      signal: ctl.signal,
      fetchImpl: (async (url: string) => {
        urls.push(url);
        const next = answers.shift();
        if (!next) {
          ctl.abort();
          throw new DOMException("aborted", "AbortError");
        }
        return next();
      }) as unknown as typeof fetch,
      sleep: async () => undefined,
    });
    expect(got).toEqual([{ signal: { id: "01A" } }, { signal: { id: "01C" } }]); // the error line is not a message
    expect(ends).toEqual([{ code: 14, message: "the server is shutting down; resume with since=01B", resume: { since: "01B" } }]);
    expect(urls.slice(0, 2)).toEqual(["/s", "/s?since=01B"]);
    const retry = states.find((s) => s.kind === "retrying");
    expect(retry).toMatchObject({ kind: "retrying", code: 14, reason: "the server is shutting down; resume with since=01B" });
  });

  it("a finite stream ended by the server stops with its message", async () => {
    let final: StreamState | undefined;
    await followStream({
      url: () => "/run",
      method: "POST",
      body: {},
      reconnect: false,
      headers: () => ({}),
      onMessage: () => undefined,
      onState: (s) => (final = s),
      signal: new AbortController().signal,
      fetchImpl: (async () =>
        response(200, ['{"progress":{"done":1}}\n{"error":{"code":14,"message":"the server is shutting down; reconnect"}}\n'])) as unknown as typeof fetch,
      sleep: async () => undefined,
    });
    expect(final?.kind).toBe("stopped");
    const err = (final as { error?: ApiError }).error;
    expect(err?.message).toBe("the server is shutting down; reconnect");
    expect(err?.code).toBe(14);
  });
});

describe("streamEnd", () => {
  it("reads an error line, with or without details, and nothing else", () => {
    expect(streamEnd({ error: { code: 8, message: "too slow" } })).toEqual({ code: 8, message: "too slow", resume: {} });
    expect(streamEnd({ heartbeat: {} })).toBeNull();
    expect(streamEnd({ error: null })).toBeNull();
    expect(streamEnd(null)).toBeNull();
  });
});
