import { readFileSync } from "node:fs";
import { type MessageInitShape, create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import * as gptO200k from "gpt-tokenizer/encoding/o200k_base";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { GrantRequestSchema } from "../../src/gen/creditd/v1/admin_service_pb.js";
import {
  EstimateRequestSchema,
  ReserveRequestSchema,
  SettleRequestSchema,
  type ReserveResponse,
} from "../../src/gen/creditd/v1/credit_service_pb.js";
import { PricedRequestSchema, UsageSchema } from "../../src/gen/creditd/v1/pricing_pb.js";
import { BucketKind } from "../../src/gen/creditd/v1/types_pb.js";
import { parseCatalog } from "../../src/pricing/catalog.js";
import { adminService } from "../../src/service/admin-service.js";
import { creditService } from "../../src/service/credit-service.js";
import { C, type TestLedger, openLedger, snapshot } from "../support/ledger.js";
import { testPricer } from "../support/pricing.js";
import { useTestRedis } from "../support/redis.js";

const env = useTestRedis();
const ctx = { signal: new AbortController().signal };
const catalogText = (name: string) => readFileSync(new URL(`../../examples/catalogs/${name}.yaml`, import.meta.url), "utf8");

let t: TestLedger;
let pricing: ReturnType<typeof testPricer>;
let credit: ReturnType<typeof creditService>;
const opened: Array<ReturnType<typeof testPricer>> = [];
afterAll(async () => {
  for (const p of opened) await p.close();
});

function serve(catalog: string) {
  pricing = testPricer(env.redis, t.prefix, { catalogSource: catalogText(catalog) });
  opened.push(pricing);
  credit = creditService({ ledger: t.ledger, pricer: pricing.pricer, holdTtlDefaultSeconds: 600, holdTtlMaxSeconds: 3600 });
}

beforeEach(async () => {
  t = await openLedger(env.redis);
  await adminService({ ledger: t.ledger, catalog: () => pricing.pricer.catalog }).grant(
    create(GrantRequestSchema, { accountId: "acme", grantId: "g", amountMicros: 1000n * BigInt(C), kind: BucketKind.ALLOWANCE }),
    ctx,
  );
});

const priced = (p: MessageInitShape<typeof PricedRequestSchema>) => create(PricedRequestSchema, p);
let n = 0;
const reserve = (p: ReturnType<typeof priced>, requestId = `r${++n}`): Promise<ReserveResponse> =>
  credit.reserve(create(ReserveRequestSchema, { accountId: "acme", requestId, cost: { case: "priced", value: p } }), ctx);
const settleUsage = (reservationId: string, usage: object) =>
  credit.settle(create(SettleRequestSchema, { reservationId, cost: { case: "usage", value: create(UsageSchema, usage) } }), ctx);

async function refusal(p: Promise<unknown>): Promise<ConnectError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  if (!(err instanceof ConnectError)) throw new Error(`expected a ConnectError, got ${String(err)}`);
  return err;
}

describe("fixed-price operations (landing-page builder)", () => {
  beforeEach(() => serve("landing-page-builder"));

  it.each([
    ["content.rewrite", {}, 1],
    ["section.generate", {}, 10],
    ["image.generate", { image: { width: 1024, height: 1024 } }, 30],
    ["image.generate", { image: { width: 2048, height: 2048 } }, 60],
    ["avatar.select", {}, 0],
  ] as Array<[string, MessageInitShape<typeof PricedRequestSchema>, number]>)("%s %j holds and charges %d credits, with a receipt", async (operation, extra, credits) => {
    const r = await reserve(priced({ operation, ...extra }));
    expect(r.heldMicros).toBe(BigInt(credits * C));
    expect(r.estimate?.totalMicros).toBe(BigInt(credits * C));
    expect(r.estimate?.catalogVersion).toBe(pricing.catalogs.current.version);
    const s = await settleUsage(r.reservationId, {});
    expect(s.chargedMicros).toBe(BigInt(credits * C));
    expect(s.receipt?.totalMicros).toBe(BigInt(credits * C));
    // The receipt is in the ledger entry of the Settle, free operations included.
    const [entry] = await env.redis.xrevrange(t.ledger.keys.account("acme").ledger, "+", "-", "COUNT", 1);
    const fields = entry?.[1] ?? [];
    expect(fields[fields.indexOf("receipt") + 1]).toContain(`"total":"${credits * C}"`);
  });

  it("charges only the images produced: 3 of 4 → 90", async () => {
    const r = await reserve(priced({ operation: "image.generate", image: { width: 1024, height: 1024, count: 4 } }));
    expect(r.heldMicros).toBe(120n * BigInt(C));
    const s = await settleUsage(r.reservationId, { images: 3 });
    expect(s).toMatchObject({ chargedMicros: 90n * BigInt(C), releasedMicros: 30n * BigInt(C) });
  });

  it("prices the document's worked examples at exactly 205 and 770 credits", async () => {
    const ops = (list: Array<[number, string, MessageInitShape<typeof PricedRequestSchema>?]>) =>
      list.flatMap(([count, operation, extra]) => Array.from({ length: count }, () => priced({ operation, ...extra })));
    const k1 = { image: { width: 1024, height: 1024 } };
    const k2 = { image: { width: 2048, height: 2048 } };
    const first = await credit.estimate(
      create(EstimateRequestSchema, { requests: ops([[10, "section.generate"], [15, "content.rewrite"], [3, "image.generate", k1]]) }),
      ctx,
    );
    expect(first.totalMicros).toBe(205n * BigInt(C));
    const second = await credit.estimate(
      create(EstimateRequestSchema, {
        requests: ops([[30, "section.generate"], [50, "content.rewrite"], [10, "image.generate", k1], [2, "image.generate", k2]]),
      }),
      ctx,
    );
    expect(second.totalMicros).toBe(770n * BigInt(C));
    expect(second.items).toHaveLength(92);
  });

  it.each([
    [{ operation: "nope" }, "priced.operation"],
    [{ operation: "image.generate", image: { width: 0, height: 0 } }, "priced.image.width"],
    [{ operation: "image.generate", image: { width: 100000, height: 100000 } }, "priced.image.width"],
    [{ operation: "image.generate", image: { width: 1024, height: 1024, quality: "ultra" } }, "priced.image.quality"],
    [{ operation: "image.generate" }, "priced.image"],
  ] as Array<[MessageInitShape<typeof PricedRequestSchema>, string]>)("bad request %j is INVALID_ARGUMENT naming %s, and holds nothing", async (p, field) => {
    const before = await snapshot(env.redis, t.prefix);
    const err = await refusal(reserve(priced(p)));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage.startsWith(`${field}: `)).toBe(true);
    expect(await snapshot(env.redis, t.prefix)).toEqual(before);
  });

  it("Settle with usage of a reservation made with an amount is refused", async () => {
    const r = await credit.reserve(create(ReserveRequestSchema, { accountId: "acme", requestId: "plain", cost: { case: "amountMicros", value: 5n } }), ctx);
    const err = await refusal(settleUsage(r.reservationId, {}));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toMatch(/settle it with charge_micros/);
  });
});

describe("token-priced chat (chatbot platform)", () => {
  beforeEach(() => serve("chatbot-platform"));
  const prompt = "Summarise the attached meeting notes in three bullet points. 会議メモを要約してください 🙂";
  const inputTokens = gptO200k.encode(prompt).length;
  // gpt-4o: 250 credits per 1M input tokens, 1000 per 1M output; totals rounded up to 0.01 credit (10,000 micros).
  const roundUp = (micros: bigint) => ((micros + 9_999n) / 10_000n) * 10_000n;

  it("counts the prompt with the model's tokenizer and holds the worst case of the output cap", async () => {
    const r = await reserve(priced({ operation: "chat", model: "gpt-4o", input: { case: "text", value: prompt } }));
    expect(r.maxOutputTokens).toBe(1024n);
    expect(r.heldMicros).toBe(roundUp(BigInt(inputTokens) * 250n + 1024n * 1000n));
    expect(r.estimate?.tokenizer).toBe("o200k_base");
    expect(r.estimate?.estimated).toBe(false);
    expect(r.estimate?.items.find((i) => i.description.includes("input"))?.quantity).toBe(BigInt(inputTokens));

    const s = await settleUsage(r.reservationId, { outputTokens: 200n });
    expect(s.chargedMicros).toBe(roundUp(BigInt(inputTokens) * 250n + 200n * 1000n));
    expect(s.releasedMicros).toBe(r.heldMicros - s.chargedMicros);
  });

  it("counts the output text when the upstream sent no usage", async () => {
    const r = await reserve(priced({ operation: "chat", model: "gpt-4o", input: { case: "inputTokens", value: 1000n } }));
    const output = "Here are the three bullet points you asked for.";
    const s = await settleUsage(r.reservationId, { outputText: output });
    expect(s.chargedMicros).toBe(roundUp(1000n * 250n + BigInt(gptO200k.encode(output).length) * 1000n));
  });

  it("counts chat messages as OpenAI documents: 3 per message, 3 to prime the reply", async () => {
    const messages = [
      { role: "system", content: "You are terse." },
      { role: "user", content: "Hi!", name: "ada" },
    ];
    const expected = messages.reduce((sum, m) => sum + 3 + gptO200k.encode(m.role).length + gptO200k.encode(m.content).length + (m.name ? 1 + gptO200k.encode(m.name).length : 0), 3);
    const e = await credit.estimate(
      create(EstimateRequestSchema, { requests: [priced({ operation: "chat", model: "gpt-4o", input: { case: "chat", value: { messages } }, maxOutputTokens: 1n })] }),
      ctx,
    );
    expect(e.items[0]?.receipt?.items.find((i) => i.description.includes("input"))?.quantity).toBe(BigInt(expected));
  });

  it("counts large prompts off the event loop, concurrently, to the same counts", async () => {
    const texts = Array.from({ length: 8 }, (_, i) => `${i} `.concat("The quick brown fox 跳过 the lazy dog 🙂. ".repeat(1200)));
    const held = await Promise.all(
      texts.map((text) => reserve(priced({ operation: "chat", model: "gpt-4o", input: { case: "text", value: text }, maxOutputTokens: 1n }))),
    );
    held.forEach((r, i) => {
      const tokens = BigInt(gptO200k.encode(texts[i] as string).length);
      expect(r.estimate?.items.find((it) => it.description.includes("input"))?.quantity).toBe(tokens);
    });
    expect(pricing.meter.stats().workerTexts).toBeGreaterThanOrEqual(8);
  });

  it("refuses a prompt above the size limit before counting it", async () => {
    const before = pricing.meter.stats().tokenizedTexts;
    const err = await refusal(reserve(priced({ operation: "chat", model: "gpt-4o", input: { case: "text", value: "x".repeat((1 << 20) + 1) } })));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toMatch(/^priced\.text: /);
    expect(pricing.meter.stats().tokenizedTexts).toBe(before);
  });

  it("refuses a request whose worst case is above max_credits, holding nothing", async () => {
    const before = await snapshot(env.redis, t.prefix);
    const err = await refusal(reserve(priced({ operation: "chat", model: "gpt-4o", input: { case: "inputTokens", value: 10n }, maxCreditsMicros: 100n })));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toMatch(/^priced\./);
    expect(await snapshot(env.redis, t.prefix)).toEqual(before);
  });

  it("a retried priced Reserve replays; another request under the same id is a conflict", async () => {
    const p = priced({ operation: "chat", model: "gpt-4o", input: { case: "text", value: prompt } });
    const first = await reserve(p, "same");
    const again = await reserve(p, "same");
    expect(again).toEqual({ ...first, replayed: true });
    const err = await refusal(reserve(priced({ operation: "chat", model: "gpt-4o", input: { case: "text", value: `${prompt}!` } }), "same"));
    expect(err.code).toBe(Code.AlreadyExists);
  });
});

describe("catalog reload with holds in flight", () => {
  beforeEach(() => serve("landing-page-builder"));

  it("a hold settles with the catalog version it was priced with, on this replica and on another", async () => {
    const oldVersion = pricing.catalogs.current.version;
    const held = await reserve(priced({ operation: "section.generate" }));
    const heldElsewhere = await reserve(priced({ operation: "section.generate" }));

    // The price of a section doubles.
    pricing.catalogs.install(parseCatalog(catalogText("landing-page-builder").replace("price: 10", "price: 20")));
    expect(pricing.catalogs.current.version).not.toBe(oldVersion);
    expect((await reserve(priced({ operation: "section.generate" }))).heldMicros).toBe(20n * BigInt(C));

    const s = await settleUsage(held.reservationId, {});
    expect(s.chargedMicros).toBe(10n * BigInt(C));
    expect(s.receipt?.catalogVersion).toBe(oldVersion);

    // Another replica started on the new catalog only: it finds the old version in Redis.
    const other = testPricer(env.redis, t.prefix, { catalogSource: catalogText("landing-page-builder").replace("price: 10", "price: 20") });
    opened.push(other);
    const otherCredit = creditService({ ledger: t.ledger, pricer: other.pricer, holdTtlDefaultSeconds: 600, holdTtlMaxSeconds: 3600 });
    const s2 = await otherCredit.settle(
      create(SettleRequestSchema, { reservationId: heldElsewhere.reservationId, cost: { case: "usage", value: create(UsageSchema, {}) } }),
      ctx,
    );
    expect(s2.chargedMicros).toBe(10n * BigInt(C));
    expect(s2.receipt?.catalogVersion).toBe(oldVersion);
  });

  it("GetCatalog shows the loaded catalog and its version", async () => {
    const c = await credit.getCatalog({} as never, ctx);
    expect(c.version).toBe(pricing.catalogs.current.version);
    expect(c.name).toBe("Landing page builder");
    expect(c.source).toBe(catalogText("landing-page-builder"));
  });
});
