// The idempotency fingerprint of a priced Reserve (src/service/pricing.ts): built from the Meter's digest of the
// input (a text's, or a chat's strings as a sequence) instead of encoding and hashing the whole request again, it must still tell apart any two requests that
// differ, and be the same for the same request however its texts were counted.
import { type MessageInitShape, create, equals } from "@bufbuild/protobuf";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { ChatMessageSchema, type PricedRequest, PricedRequestSchema } from "../../src/gen/creditd/v1/pricing_pb.js";
import { digestOf, sequenceDigest } from "../../src/metering/index.js";
import { fingerprintOf, inputDigestOf } from "../../src/service/pricing.js";
import { testPricer } from "../support/pricing.js";
import { uniquePrefix, useTestRedis } from "../support/redis.js";

const priced = (p: MessageInitShape<typeof PricedRequestSchema>): PricedRequest => create(PricedRequestSchema, p);

// Small alphabets, so that random pairs are often equal, or differ in one place only.
const text = fc.constantFrom("", "a", "b", "ab", "a:b", digestOf("a"), "é");
const int64 = fc.constantFrom(0n, 1n, 2n);
const parametersJson = fc.constantFrom("", "{}", '{"properties":{"a":{"type":"string"}}}', '{"properties":{"a":{"type":"number"}}}');
const int32 = fc.constantFrom(0, 1, 2);
const request: fc.Arbitrary<PricedRequest> = fc
  .record({
    operation: text,
    model: text,
    input: fc.oneof(
      fc.constant({ case: undefined }),
      fc.record({ case: fc.constant("text" as const), value: text }),
      fc.record({ case: fc.constant("inputTokens" as const), value: int64 }),
      fc.record({
        case: fc.constant("chat" as const),
        value: fc.record({
          messages: fc.array(fc.record({ role: fc.constantFrom("user", "system"), content: text, name: text }), { maxLength: 3 }),
          // parameters that the Meter can count (a request with others is refused before any fingerprint)
          tools: fc.array(fc.record({ name: text, description: text, parametersJson: parametersJson }), { maxLength: 1 }),
        }),
      }),
    ),
    cachedInputTokens: int64,
    maxOutputTokens: int64,
    image: fc.option(fc.record({ width: int32, height: int32, quality: text, count: int32 }), { nil: undefined }),
    video: fc.option(fc.record({ seconds: int32, tier: text }), { nil: undefined }),
    units: int64,
    maxCreditsMicros: fc.option(int64, { nil: undefined }),
    reasoningTokens: int64,
  })
  .map((r) => priced(r as MessageInitShape<typeof PricedRequestSchema>));

describe("fingerprintOf", () => {
  it("is equal for two requests exactly when they are equal", () => {
    fc.assert(
      fc.property(request, request, (a, b) => {
        expect(fingerprintOf(a) === fingerprintOf(b)).toBe(equals(PricedRequestSchema, a, b));
      }),
      { numRuns: 5000 },
    );
  });

  it("tells apart requests that count the same texts in other places", () => {
    const chat = (messages: Array<{ role: string; content: string; name?: string }>) =>
      priced({ model: "m", input: { case: "chat", value: { messages } } });
    const fingerprints = [
      chat([{ role: "user", content: "a", name: "b" }, { role: "user", content: "c" }]),
      chat([{ role: "user", content: "a" }, { role: "user", content: "b", name: "c" }]),
      chat([{ role: "user", content: "", name: "a" }]),
      chat([{ role: "user", content: "a" }]),
      chat([{ role: "user", content: "a" }, { role: "user", content: "" }]),
      priced({ model: "m", input: { case: "text", value: "a" } }),
      priced({ model: "m", input: { case: "text", value: "" } }),
      priced({ model: "m", input: { case: "text", value: digestOf("a") } }), // a text that is another's digest
      priced({ model: "m" }),
      priced({ model: "m", maxCreditsMicros: 0n }), // present zero against absent
      priced({ model: "m", image: {} }),
    ].map((p) => fingerprintOf(p));
    expect(new Set(fingerprints).size).toBe(fingerprints.length);
  });

  it("uses the input digest it is given: the same fingerprint as hashing the texts itself", () => {
    const p = priced({ input: { case: "chat", value: { messages: [{ role: "user", content: "hello", name: "x" }] } } });
    expect(inputDigestOf(p)).toBe(sequenceDigest(["hello", "x"]));
    expect(fingerprintOf(p, sequenceDigest(["hello", "x"]))).toBe(fingerprintOf(p));
    // What it is given is what it uses (the Meter's digest is trusted, not checked): a wrong digest changes it.
    expect(fingerprintOf(p, sequenceDigest(["other", "x"]))).not.toBe(fingerprintOf(p));
    const t = priced({ input: { case: "text", value: "hello" } });
    expect(inputDigestOf(t)).toBe(digestOf("hello"));
    expect(fingerprintOf(t, digestOf("hello"))).toBe(fingerprintOf(t));
  });

  it("covers every field of a chat message (a new field must join the fingerprint's message tuple)", () => {
    // fingerprintOf encodes each message as [role, name, content length] and the contents through the input digest:
    // a field added to ChatMessage would otherwise be left out of it.
    expect(ChatMessageSchema.fields.map((f) => f.name)).toEqual(["role", "content", "name"]);
  });
});

describe("Pricer.priceHold's fingerprint", () => {
  const env = useTestRedis();
  const opened: Array<ReturnType<typeof testPricer>> = [];
  afterAll(async () => {
    for (const p of opened) await p.close();
  });
  const pricer = () => {
    const t = testPricer(env.redis, uniquePrefix());
    opened.push(t);
    return t.pricer;
  };

  it("is the request's fingerprint, counted inline, on a worker, or from the cache", async () => {
    const p = pricer();
    const history = Array.from({ length: 20 }, (_, i) => ({ role: i % 2 ? "assistant" : "user", content: `turn ${i} `.repeat(30) }));
    const requests = [
      priced({ operation: "chat", input: { case: "text", value: "A short prompt." } }),
      priced({ operation: "chat", input: { case: "text", value: "long prompt ".repeat(50_000) } }), // 600 KB: a worker
      priced({ operation: "chat", maxOutputTokens: 100n, input: { case: "chat", value: { messages: history } } }),
      priced({ operation: "chat", input: { case: "inputTokens", value: 1000n } }),
    ];
    for (const r of requests) {
      const first = await p.priceHold("priced", "acme", r);
      const again = await p.priceHold("priced", "acme", r); // every text from the cache now
      expect(first.fingerprint).toBe(fingerprintOf(r));
      expect(again.fingerprint).toBe(first.fingerprint);
    }
  });

  it("differs when one message of a long chat differs, when only a name differs, and per request field", async () => {
    const p = pricer();
    const messages = Array.from({ length: 50 }, (_, i) => ({ role: i % 2 ? "assistant" : "user", content: `message ${i}` }));
    const base = priced({ operation: "chat", input: { case: "chat", value: { messages } } });
    const variants = [
      base,
      priced({ operation: "chat", input: { case: "chat", value: { messages: messages.map((m, i) => (i === 30 ? { ...m, content: "message 30!" } : m)) } } }),
      priced({ operation: "chat", input: { case: "chat", value: { messages: messages.map((m, i) => (i === 30 ? { ...m, name: "bob" } : m)) } } }),
      priced({ operation: "chat", maxOutputTokens: 10n, input: { case: "chat", value: { messages } } }),
      priced({ operation: "chat", maxCreditsMicros: 1_000_000_000n, input: { case: "chat", value: { messages } } }),
    ];
    const fingerprints = await Promise.all(variants.map(async (v) => (await p.priceHold("priced", "acme", v)).fingerprint));
    expect(new Set(fingerprints).size).toBe(variants.length);
  });
});
