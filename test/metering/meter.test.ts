// The Meter: worker path, event-loop responsiveness under concurrency, the per-message cache, the size limit, the
// bounded queue.
import { createHash } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { availableParallelism } from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { MeterClosedError, MeterOverloadedError, TextTooLargeError } from "../../src/metering/errors.js";
import { CHAT_LOOKBACK, HASH_SLICE, Meter, digestInSlices, digestOf, sequenceDigest } from "../../src/metering/meter.js";
import { planChat } from "../../src/metering/chat.js";
import { countRaw } from "../../src/metering/tokenizer.js";
import { english, mixed } from "./texts.js";

const O200K = { encoding: "o200k_base" } as const;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const meter = new Meter({ inlineMaxBytes: 16 * 1024, maxInputBytes: 2 * 1024 * 1024, cacheEntries: 10_000 });
afterAll(() => meter.close());

describe("worker path", () => {
  it("counts large texts on a worker, with the same counts as inline", async () => {
    const before = meter.stats();
    for (const encoding of ["o200k_base", "cl100k_base"] as const) {
      const text = mixed(220 * 1024, encoding === "o200k_base" ? 101 : 102);
      const r = await meter.countText("input.text", text, { encoding });
      expect(r).toMatchObject({ tokens: countRaw(text, encoding).tokens, estimated: false, tokenizer: encoding, cached: false });
    }
    const after = meter.stats();
    expect(after.workerTexts - before.workerTexts).toBe(2);
    expect(after.inlineTexts - before.inlineTexts).toBe(0);
  });

  it("runs its workers at a lower priority (nice 10 by default, workerNice to change it), the RPC thread keeps its own", async () => {
    // The threads of this process by id, with their nice value (field 19 of /proc/<pid>/task/<tid>/stat).
    const threads = (): Map<string, number> =>
      new Map(
        readdirSync("/proc/self/task").map((tid) => {
          const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
          return [tid, Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16])];
        }),
      );
    const newNices = (before: Map<string, number>): number[] =>
      [...threads()].filter(([tid]) => !before.has(tid)).map(([, nice]) => nice);
    const own = threads().get(String(process.pid))!;
    const m10 = new Meter({ workers: 1 });
    const m5 = new Meter({ workers: 1, workerNice: 5 });
    try {
      // Every thread the pool started (from src/ the worker also starts a module-hooks thread, at its priority).
      let before = threads();
      await m10.warmup();
      const started10 = newNices(before);
      expect(started10.length).toBeGreaterThan(0);
      expect(new Set(started10)).toEqual(new Set([own + 10]));
      before = threads();
      await m5.warmup();
      const started5 = newNices(before);
      expect(started5.length).toBeGreaterThan(0);
      expect(new Set(started5)).toEqual(new Set([own + 5]));
      expect(threads().get(String(process.pid))).toBe(own);
    } finally {
      await m10.close();
      await m5.close();
    }
    expect(new Meter({ workerNice: 20 }).workerNice).toBe(19); // clamped: the lowest priority there is
    expect(() => new Meter({ workerNice: -1 })).toThrow(/workerNice/);
  });

  it("counts small texts inline", async () => {
    const before = meter.stats();
    const r = await meter.countText("input.text", "A short prompt.", O200K);
    expect(r.tokens).toBe(4);
    expect(meter.stats().inlineTexts - before.inlineTexts).toBe(1);
    expect(meter.stats().workerTexts - before.workerTexts).toBe(0);
  });

  it("keeps the event loop responsive while 20 large texts are counted, where inline counting blocks it", async () => {
    const texts = Array.from({ length: 20 }, (_, i) => english(150 * 1024, 1000 + i));
    await meter.warmup();

    const onWorkers = monitorEventLoopDelay({ resolution: 5 });
    onWorkers.enable();
    await sleep(20); // the histogram needs a first tick before it can see a delay
    const t0 = performance.now();
    const results = await Promise.all(texts.map((t) => meter.countText("input.text", t, O200K)));
    const workerWall = performance.now() - t0;
    onWorkers.disable();

    // The same 20 texts on a meter that counts everything inline (as if there were no workers).
    const inlineMeter = new Meter({ inlineMaxBytes: 8 * 1024 * 1024, cacheEntries: 0 });
    const inline = monitorEventLoopDelay({ resolution: 5 });
    inline.enable();
    await sleep(20);
    const inlineResults = await Promise.all(texts.map((t) => inlineMeter.countText("input.text", t, O200K)));
    await sleep(20); // let the histogram record the stall
    inline.disable();
    await inlineMeter.close();

    expect(results.map((r) => r.tokens)).toEqual(inlineResults.map((r) => r.tokens));
    const workerMaxMs = onWorkers.max / 1e6;
    const inlineMaxMs = inline.max / 1e6;
    console.log(
      `event-loop delay, 20 × 150 KiB: max ${workerMaxMs.toFixed(1)} ms on workers (${workerWall.toFixed(0)} ms wall), ` +
        `${inlineMaxMs.toFixed(1)} ms inline`,
    );
    expect(workerMaxMs).toBeLessThan(200);
    expect(inlineMaxMs).toBeGreaterThan(300);
    expect(inlineMaxMs).toBeGreaterThan(3 * workerMaxMs);
  });

  it("counts an identical text only once when it is requested concurrently", async () => {
    const text = english(64 * 1024, 77);
    const before = meter.stats();
    const [a, b] = await Promise.all([meter.countText("t", text, O200K), meter.countText("t", text, O200K)]);
    expect(a.tokens).toBe(b.tokens);
    const after = meter.stats();
    expect(after.tokenizedTexts - before.tokenizedTexts).toBe(1);
    expect(after.inflightShared - before.inflightShared).toBe(1);
  });

  it("uses at most cores - 1 workers and at least 1", async () => {
    const m = new Meter({ workers: 64 });
    expect(m.workers).toBe(Math.max(1, availableParallelism() - 1));
    await m.close();
    await expect(m.countText("t", "x", O200K)).rejects.toBeInstanceOf(MeterClosedError);
  });

  it("refuses work beyond the bounded queue with MeterOverloadedError", async () => {
    const m = new Meter({ workers: 1, maxQueue: 1, inlineMaxBytes: 0, cacheEntries: 0 });
    const texts = Array.from({ length: 6 }, (_, i) => english(32 * 1024, 500 + i));
    const settled = await Promise.allSettled(texts.map((t) => m.countText("t", t, O200K)));
    await m.close();
    const refused = settled.filter((s) => s.status === "rejected");
    expect(refused.length).toBeGreaterThanOrEqual(1);
    for (const s of refused) expect((s as PromiseRejectedResult).reason).toBeInstanceOf(MeterOverloadedError);
    settled.forEach((s, i) => {
      if (s.status === "fulfilled") expect(s.value.tokens).toBe(countRaw(texts[i]!, "o200k_base").tokens);
    });
  });
});

describe("cache", () => {
  function chat(turns: number, seed: number) {
    const messages = [{ role: "system", content: "You are the support assistant of Acme. Answer briefly and politely." }];
    for (let i = 0; i < turns; i++) {
      messages.push({ role: i % 2 === 0 ? "user" : "assistant", content: english(300 + ((i * 37) % 400), seed + i) });
    }
    return messages;
  }

  it("a 50-turn chat whose history was seen tokenizes only its new message", async () => {
    const history = chat(50, 9000);
    const first = await meter.countChat("input.messages", history, undefined, O200K, { scope: "acme" });
    expect(first.cached).toBe(false);

    const next = [...history, { role: "user", content: "And what about the invoice from last March?" }];
    const before = meter.stats();
    const second = await meter.countChat("input.messages", next, undefined, O200K, { scope: "acme" });
    const after = meter.stats();
    expect(after.tokenizedTexts - before.tokenizedTexts).toBe(1); // only the new message
    expect(after.tokenizedBytes - before.tokenizedBytes).toBe(Buffer.byteLength("And what about the invoice from last March?"));
    // the history in one lookup (the chat's strings without the last one), the new message through the per-string cache
    expect(after.chatHits - before.chatHits).toBe(1);
    expect(after.cacheHits - before.cacheHits).toBe(0);
    expect(after.cacheMisses - before.cacheMisses).toBe(1);
    expect(second.cached).toBe(false);

    // and the count is right: the same chat on a meter without a cache
    const fresh = new Meter({ cacheEntries: 0, inlineMaxBytes: 1024 * 1024 });
    const reference = await fresh.countChat("input.messages", next, undefined, O200K);
    await fresh.close();
    expect(second.tokens).toBe(reference.tokens);

    const again = await meter.countChat("input.messages", next, undefined, O200K, { scope: "acme" });
    expect(again).toEqual({ ...second, cached: true });
    expect(meter.stats().tokenizedTexts).toBe(after.tokenizedTexts);
  });

  it("hands back the SHA-256 of a text, and of a chat's strings as a sequence, cached or not, whatever the scope and encoding", async () => {
    const sha = (t: string) => createHash("sha256").update(t, "utf8").digest("base64url");
    // the definition: each string's UTF-16 length, ":", the string
    const seq = (texts: string[]) => {
      const h = createHash("sha256");
      for (const t of texts) h.update(`${t.length}:${t}`, "utf8");
      return h.digest("base64url");
    };
    const text = `Digest me: ${mixed(3000, 77)}`;
    for (const [scope, encoding] of [["a", "o200k_base"], ["a", "o200k_base"], ["b", "cl100k_base"]] as const) {
      const r = await meter.countText("t", text, { encoding }, { scope });
      expect(r.digest).toBe(sha(text));
    }
    expect((await meter.countText("t", "", O200K)).digest).toBe("");
    expect(digestOf("Hello there")).toBe(sha("Hello there"));
    expect(digestOf(Buffer.from("Hello there"))).toBe(sha("Hello there"));

    const messages = [
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hello there", name: "ana" },
      { role: "user", content: "Be brief." },
      { role: "assistant", content: "" }, // nothing to count: not in the sequence
    ];
    const tools = [{ type: "function", function: { name: "get_weather", description: "Weather of a city." } }];
    for (const [scope, encoding] of [["a", "o200k_base"], ["a", "o200k_base"], ["b", "cl100k_base"]] as const) {
      const r = await meter.countChat("input.messages", messages, undefined, { encoding }, { scope });
      expect(r.digest).toBe(seq(["Be brief.", "Hello there", "ana", "Be brief."]));
      expect(r.digest).toBe(sequenceDigest(["Be brief.", "Hello there", "ana", "Be brief."]));
      // the tool lines come first
      const withTools = await meter.countChat("input.messages", messages, tools, { encoding }, { scope });
      expect(withTools.digest).toBe(seq(["get_weather:Weather of a city", "Be brief.", "Hello there", "ana", "Be brief."]));
    }
    // the lengths tell apart lists whose strings run together the same way
    expect(sequenceDigest(["ab", "c"])).not.toBe(sequenceDigest(["a", "bc"]));
    expect(sequenceDigest(["1:a"])).not.toBe(sequenceDigest(["a"]));
    expect(sequenceDigest([])).toBe(sha(""));
  });

  it("finds a chat's history with one lookup when up to CHAT_LOOKBACK strings are new, and still counts right beyond", async () => {
    const m = new Meter({ cacheEntries: 1000 });
    try {
      const history = chat(20, 4000);
      await m.countChat("input.messages", history, undefined, O200K, { scope: "acme" });
      for (const added of [1, 2, CHAT_LOOKBACK, CHAT_LOOKBACK + 1]) {
        const extra = Array.from({ length: added }, (_, i) => ({ role: i % 2 ? "assistant" : "user", content: english(60, 7000 + 10 * added + i) }));
        const next = [...history, ...extra];
        const before = m.stats();
        const r = await m.countChat("input.messages", next, undefined, O200K, { scope: "acme" });
        const after = m.stats();
        expect(after.chatHits - before.chatHits).toBe(added <= CHAT_LOOKBACK ? 1 : 0);
        expect(after.tokenizedTexts - before.tokenizedTexts).toBe(added); // only the new strings, either way
        expect(after.cacheHits - before.cacheHits).toBe(added <= CHAT_LOOKBACK ? 0 : history.length);
        const fresh = new Meter({ cacheEntries: 0 });
        expect(r).toEqual({ ...(await fresh.countChat("input.messages", next, undefined, O200K)), cached: false });
        await fresh.close();
      }
      // an exact repeat: one lookup, nothing else
      const before = m.stats();
      const again = await m.countChat("input.messages", history, undefined, O200K, { scope: "acme" });
      expect(again.cached).toBe(true);
      expect(m.stats().chatHits - before.chatHits).toBe(1);
      expect(m.stats().cacheHits - before.cacheHits).toBe(0);
      // another scope or encoding finds nothing of it
      for (const [scope, encoding] of [["other", "o200k_base"], ["acme", "cl100k_base"]] as const) {
        const b = m.stats();
        expect((await m.countChat("input.messages", history, undefined, { encoding }, { scope })).cached).toBe(false);
        expect(m.stats().chatHits - b.chatHits).toBe(0);
      }
    } finally {
      await m.close();
    }
  });

  it("never takes a chat's sum for a text's count or the reverse (a text can spell out a chat's hashed form)", async () => {
    const m = new Meter({ cacheEntries: 100 });
    try {
      const word = "supercalifragilistic";
      const chatCount = await m.countChat("input.messages", [{ role: "user", content: word }], undefined, O200K);
      // the string a one-string chat is hashed as
      const spelled = `${word.length}:${word}`;
      const textCount = await m.countText("t", spelled, O200K);
      expect(textCount.cached).toBe(false);
      expect(textCount.tokens).toBe(countRaw(spelled, "o200k_base").tokens);
      expect(textCount.digest).toBe(sequenceDigest([word]));
      const chatAgain = await m.countChat("input.messages", [{ role: "user", content: word }], undefined, O200K);
      expect(chatAgain).toEqual({ ...chatCount, cached: true });
    } finally {
      await m.close();
    }
  });

  it("counts every turn of random conversations as a meter without a cache does", async () => {
    const m = new Meter({ cacheEntries: 500 });
    const fresh = new Meter({ cacheEntries: 0 });
    const role = fc.constantFrom("system", "user", "assistant", "tool");
    const content = fc.constantFrom("", "hi", "Hello there!", "x".repeat(40), "日本語のテキスト", "a:b", "1:a");
    const message = fc.record({ role, content, name: fc.option(fc.constantFrom("ana", "bo"), { nil: undefined }) });
    const tool = fc.record({ type: fc.constant("function"), function: fc.record({ name: fc.constantFrom("f", "g"), description: fc.constantFrom("", "Does f.") }) });
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.array(message, { minLength: 1, maxLength: 6 }),
          fc.array(fc.array(message, { minLength: 0, maxLength: 9 }), { minLength: 1, maxLength: 4 }),
          fc.option(fc.array(tool, { maxLength: 2 }), { nil: undefined }),
          fc.constantFrom("s1", "s2"),
          async (start, turns, tools, scope) => {
            let messages = start;
            for (const added of turns) {
              messages = [...messages, ...added];
              const got = await m.countChat("input.messages", messages, tools, O200K, { scope });
              const want = await fresh.countChat("input.messages", messages, tools, O200K);
              // `cached` is compared apart: a chat whose strings are all empty has nothing to count, and then even
              // the meter without a cache says cached (MeterCount.cached: "or there was nothing to count").
              expect({ ...got, cached: false }).toEqual({ ...want, cached: false });
              const nothingToCount = planChat("input.messages", messages, tools, "o200k_base").texts.length === 0;
              expect(want.cached).toBe(nothingToCount);
              if (nothingToCount) expect(got.cached).toBe(true);
            }
          },
        ),
        { numRuns: 300 },
      );
    } finally {
      await m.close();
      await fresh.close();
    }
  });

  it("hashes a long string in slices, letting the event loop run between them, to the same digest", async () => {
    const emoji = "😀"; // a surrogate pair
    const slice = 8;
    const texts = [
      "a".repeat(7) + emoji + "b".repeat(30), // the pair straddles the first slice's end
      "a".repeat(8) + emoji.repeat(20),
      "a".repeat(7) + "\ud800" + "b".repeat(20), // a lone high surrogate at a slice's end
      "a".repeat(8) + "\udc00" + "b".repeat(20), // a lone low surrogate at a slice's start
      "日本語のテキスト".repeat(9),
      "short",
      "",
    ];
    for (const t of texts) expect(await digestInSlices(t, slice)).toBe(digestOf(t));

    const long = mixed(HASH_SLICE * 16, 31);
    let ticks = 0;
    let running = true;
    const tick = () => {
      ticks++;
      if (running) setImmediate(tick);
    };
    setImmediate(tick);
    const d = await digestInSlices(long);
    running = false;
    expect(d).toBe(digestOf(long));
    expect(ticks).toBeGreaterThanOrEqual(Math.ceil(long.length / HASH_SLICE) - 1);

    // a chat with a long message: the same digest as hashing it in one go
    const messages = [{ role: "user", content: long }, { role: "assistant", content: "ok" + emoji }];
    const r = await meter.countChat("input.messages", messages, undefined, O200K, { scope: "slices" });
    expect(r.digest).toBe(sequenceDigest([long, "ok" + emoji]));
  });

  it("keeps scopes apart and encodings apart", async () => {
    const text = "Scoped prompt: " + english(500, 4242);
    await meter.countText("t", text, O200K, { scope: "a" });
    expect((await meter.countText("t", text, O200K, { scope: "a" })).cached).toBe(true);
    expect((await meter.countText("t", text, O200K, { scope: "b" })).cached).toBe(false);
    expect((await meter.countText("t", text, { encoding: "cl100k_base" }, { scope: "a" })).cached).toBe(false);
  });
});

describe("size limit", () => {
  const small = new Meter({ maxInputBytes: 1000, cacheEntries: 100 });
  afterAll(() => small.close());

  it("refuses a text over maxInputBytes (UTF-8 bytes, not characters) before counting, naming the field", async () => {
    const text = "€".repeat(334); // 334 characters, 1002 bytes
    const before = small.stats();
    const err = await small.countText("input.text", text, O200K).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TextTooLargeError);
    expect(err).toMatchObject({ field: "input.text", bytes: 1002, maxBytes: 1000 });
    expect((err as Error).message).toBe("input.text: 1002 bytes of text is over the limit of 1000 bytes");
    expect(small.stats()).toEqual(before); // nothing hashed, looked up or tokenized
  });

  it("accepts exactly maxInputBytes", async () => {
    await expect(small.countText("input.text", "x".repeat(1000), O200K)).resolves.toMatchObject({ tokens: 125 });
  });

  it("sums a chat's strings", async () => {
    const messages = [
      { role: "system", content: "x".repeat(400) },
      { role: "user", content: "y".repeat(400), name: "n".repeat(201) },
    ];
    const before = small.stats();
    const err = await small.countChat("input.messages", messages, undefined, O200K).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: "TextTooLargeError", field: "input.messages", bytes: 1001, maxBytes: 1000 });
    expect(small.stats()).toEqual(before);
  });
});
