// Each example catalog reproduces its seed document's published prices (../shared/seeds, in order:
// funnel-builder, landing-page-builder, video-studio, crm-assistant, chatbot-platform).
import { readdirSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { type Catalog } from "../../src/pricing/catalog.js";
import { defaultCatalog } from "../../src/pricing/default-catalog.js";
import { type PriceRequest, PricingError, priceRequest, priceUsage } from "../../src/pricing/price.js";
import { addonCreditsMicros, type PlanAddon, planAllowanceMicros, planWorstCaseMicros, resolvePlan } from "../../src/pricing/plans.js";
import { loadCatalogFile } from "../../src/pricing/store.js";

const load = (name: string): Catalog => loadCatalogFile(new URL(`../../examples/catalogs/${name}.yaml`, import.meta.url).pathname);
const C = 1_000_000n;
const credits = (c: Catalog, req: PriceRequest): bigint => priceRequest(c, req).totalMicros;
/** Price each (request, times) and sum, as a customer adds up a page's operations. */
const sum = (c: Catalog, lines: Array<[PriceRequest, number]>): bigint =>
  lines.reduce((a, [req, n]) => a + BigInt(n) * credits(c, req), 0n);

test("every example catalog and the default catalog load", () => {
  const names = readdirSync(new URL("../../examples/catalogs/", import.meta.url)).filter((f) => f.endsWith(".yaml")).sort();
  expect(names).toEqual(["chatbot-platform.yaml", "crm-assistant.yaml", "funnel-builder.yaml", "landing-page-builder.yaml", "video-studio.yaml"]);
  for (const n of names) expect(load(n.replace(/\.yaml$/, "")).version).toMatch(/^[0-9a-f]{16}$/);
  const d = defaultCatalog();
  expect(d.name).toBe("creditd default catalog");
  expect(credits(d, { operation: "chat", inputTokens: 1000, maxOutputTokens: 500 })).toBe(15_000n + 30_000n); // gpt-4o-mini
  expect(credits(d, { operation: "image.generate", image: { width: 1024, height: 1024, quality: "high" } })).toBe(16_700_000n);
  expect(credits(d, { operation: "video.generate", video: { seconds: 4, tier: "sora-2-pro" } })).toBe(120n * C);
  expect(() => priceRequest(d, { model: "some-new-model" })).toThrow(PricingError); // unknown_models: refuse
  expect(priceRequest(d, { model: "claude-sonnet-4-20250514", maxOutputTokens: 1 }).model!.model.tokenizer).toEqual({
    encoding: "cl100k_base",
    estimate: true,
    multiplier: "1.15",
    label: "cl100k_base*1.15",
  });
  for (const m of d.models.values()) expect(m.tokenizer.estimate).toBe(m.name.startsWith("claude-"));
});

describe("landing-page-builder", () => {
  const c = load("landing-page-builder");
  const rewrite: PriceRequest = { operation: "content.rewrite" };
  const section: PriceRequest = { operation: "section.generate" };
  const image1k: PriceRequest = { operation: "image.generate", image: { width: 1024, height: 1024 } };
  const image2k: PriceRequest = { operation: "image.generate", image: { width: 2048, height: 2048 } };

  test("the credit costs by operation", () => {
    expect(credits(c, rewrite)).toBe(1n * C);
    expect(credits(c, section)).toBe(10n * C);
    expect(credits(c, image1k)).toBe(30n * C);
    expect(credits(c, image2k)).toBe(60n * C);
    const avatar = priceRequest(c, { operation: "avatar.select" });
    expect(avatar.totalMicros).toBe(0n); // free ...
    expect(avatar.items).toHaveLength(1); // ... and still a line of usage
  });

  test("a 10-section landing page: exactly 205 credits", () => {
    expect(sum(c, [[section, 10], [rewrite, 15], [image1k, 3]])).toBe(205n * C);
    // the same as one image request for 3 pictures
    expect(sum(c, [[section, 10], [rewrite, 15], [{ ...image1k, image: { width: 1024, height: 1024, count: 3 } }, 1]])).toBe(205n * C);
  });

  test("the larger example: exactly 770 credits", () => {
    expect(sum(c, [[section, 30], [rewrite, 50], [image1k, 10], [image2k, 2]])).toBe(770n * C);
  });

  test("only the sold sizes are priced", () => {
    expect(() => credits(c, { operation: "image.generate", image: { width: 1536, height: 1536 } })).toThrow(/image: no price for size 1536x1536/);
  });

  test("a failed image generation priced from usage costs nothing for the images not produced", () => {
    expect(priceUsage(c, { ...image1k, image: { width: 1024, height: 1024, count: 4 } }, { images: 3 }).totalMicros).toBe(90n * C);
  });
});

describe("video-studio", () => {
  const c = load("video-studio");
  test("AI Image Generator: 1 credit per image, any size; the basic model is free", () => {
    expect(credits(c, { operation: "image.generate", image: { width: 1024, height: 1024 } })).toBe(1n * C);
    expect(credits(c, { operation: "image.generate", image: { width: 1920, height: 1080, count: 3 } })).toBe(3n * C);
    expect(credits(c, { operation: "image.generate", image: { width: 1024, height: 1024, quality: "basic", count: 3 } })).toBe(0n);
  });
  test("AI Video Generator: 1 credit per second (5 s → 5, 10 s → 10); the basic tier is free", () => {
    expect(credits(c, { operation: "video.generate", video: { seconds: 5 } })).toBe(5n * C);
    expect(credits(c, { operation: "video.generate", video: { seconds: 10, tier: "premium" } })).toBe(10n * C);
    expect(credits(c, { operation: "video.generate", video: { seconds: 10, tier: "basic" } })).toBe(0n);
    expect(priceUsage(c, { operation: "video.generate", video: { seconds: 10 } }, { videoSeconds: 6 }).totalMicros).toBe(6n * C);
  });
});

describe("crm-assistant", () => {
  const c = load("crm-assistant");
  test("an AI reply or command costs 1 credit, a website knowledge sync 25", () => {
    expect(credits(c, { operation: "ai.reply" })).toBe(1n * C);
    expect(credits(c, { operation: "ai.command" })).toBe(1n * C);
    expect(credits(c, { operation: "knowledge.sync" })).toBe(25n * C);
    expect(credits(c, { operation: "knowledge.sync", units: 2 })).toBe(50n * C);
    // a gateway that sends model and tokens along does not change a fixed price
    expect(credits(c, { operation: "ai.reply", model: "gpt-4o", inputTokens: 50_000 })).toBe(1n * C);
  });
});

describe("chatbot-platform", () => {
  const c = load("chatbot-platform");
  test("credits are based on total tokens, input and output, per model", () => {
    const r = priceUsage(c, { operation: "chat", inputTokens: 2000 }, { outputTokens: 300 });
    expect(r.items.map((i) => i.kind)).toEqual(["operation", "input_tokens", "output_tokens"]);
    expect(r.roundedFrom).toBe(48_000n); // 2000 × 15/1M + 300 × 60/1M = 0.048 credits
    expect(r.totalMicros).toBe(50_000n); // rounded up to 0.01
    const big = priceUsage(c, { operation: "chat", model: "gpt-4o", inputTokens: 2000 }, { outputTokens: 300 });
    expect(big.totalMicros).toBe(800_000n); // 0.5 + 0.3
  });
  test("the chat output cap bounds every hold; unknown models are priced as gpt-4o", () => {
    expect(priceRequest(c, { operation: "chat", maxOutputTokens: 100_000 }).maxOutputTokens).toBe(4096);
    expect(priceRequest(c, { operation: "chat", model: "brand-new", maxOutputTokens: 0, inputTokens: 1_000_000 }).totalMicros).toBe(250n * C);
  });
  test("per-1K prices, aliases and estimated tokenizers", () => {
    expect(c.models.get("gpt-3.5-turbo")!.prices.inputPer1M).toBe(50n * C);
    expect(priceRequest(c, { operation: "chat", model: "claude-3-5-haiku-latest", maxOutputTokens: 0 }).model).toMatchObject({ via: "alias" });
    expect(c.models.get("claude-3-5-haiku")!.tokenizer).toEqual({ encoding: "cl100k_base", estimate: true, multiplier: "1.15", label: "cl100k_base*1.15" });
    expect(c.models.get("claude-sonnet-4")!.tokenizer).toEqual({ encoding: "o200k_base", estimate: true, multiplier: "1.15", label: "o200k_base*1.15" });
    expect(c.models.get("gpt-4o")!.tokenizer).toEqual({ encoding: "o200k_base", estimate: false, label: "o200k_base" });
  });
  test("standard and hd images", () => {
    expect(credits(c, { operation: "image.generate", image: { width: 1024, height: 1024 } })).toBe(4n * C);
    expect(credits(c, { operation: "image.generate", image: { width: 1024, height: 1024, quality: "hd" } })).toBe(8n * C);
  });
});

describe("funnel-builder", () => {
  const c = load("funnel-builder");
  const used = (operation: string, input: number, output: number): bigint => priceUsage(c, { operation, inputTokens: input }, { outputTokens: output }).totalMicros;

  test("a typical AI funnel creation uses 3 to 10 credits", () => {
    expect(used("ai.funnel", 3000, 2500)).toBe(3n * C);
    expect(used("ai.funnel", 6000, 6000)).toBe(6n * C);
    expect(used("ai.funnel", 12_000, 12_000)).toBe(10n * C);
  });
  test("an AI block uses a handful, by length", () => {
    expect(used("ai.block", 2000, 800)).toBe(2n * C);
    expect(used("ai.block", 4000, 4000)).toBe(4n * C);
    expect(used("ai.block", 500, 100)).toBe(2n * C); // at least the base, rounded to whole credits
  });
  test("longer outputs cost more; holds are bounded by the output caps", () => {
    expect(used("ai.block", 2000, 3000)).toBeGreaterThan(used("ai.block", 2000, 800));
    expect(priceRequest(c, { operation: "ai.block", inputTokens: 2000 }).totalMicros).toBe(3n * C); // 0.3 + 2048 × 600/1M + 1 → 3
    expect(priceRequest(c, { operation: "ai.funnel", inputTokens: 6000, maxOutputTokens: 1e6 }).maxOutputTokens).toBe(16_384);
  });
});

test("describeCatalog shows the loaded catalog with exact credit strings", async () => {
  const { describeCatalog } = await import("../../src/pricing/describe.js");
  const d = describeCatalog(load("landing-page-builder"));
  expect(d.rounding).toBe("up_to 1");
  expect(d.unknownModels).toBe("refuse");
  expect(d.operations.map((o) => [o.name, o.price])).toEqual([
    ["content.rewrite", "1"],
    ["section.generate", "10"],
    ["image.generate", "0"],
    ["avatar.select", "0"],
  ]);
  expect((d.operations[2]!.image as { sizes: unknown }).sizes).toEqual({ "1024x1024": { standard: "30" }, "2048x2048": { standard: "60" } });
  const chat = describeCatalog(load("chatbot-platform"));
  expect(chat.models.find((m) => m.name === "gpt-4o-mini")).toMatchObject({ inputPer1M: "15", cachedInputPer1M: "7.5", outputPer1M: "60", encoding: "o200k_base", tokenizer: "o200k_base", estimated: false });
  expect(chat.models.find((m) => m.name === "claude-3-5-haiku")).toMatchObject({ encoding: "cl100k_base", tokenizer: "cl100k_base*1.15", estimated: true });
  expect(JSON.stringify(chat)).toContain('"version"'); // JSON-safe: no bigint inside
});

describe("plans in the example catalogs", () => {
  const M = 1_000_000;
  /** id → [credits, credits per seat] of every plan, in file order. */
  const allowances = (c: Catalog): Record<string, [number, number]> =>
    Object.fromEntries([...c.plans.values()].map((p) => [p.id, [p.creditsMicros / M, p.creditsPerSeatMicros / M]]));

  test("funnel-builder (Perspective): Base 40, Grow 150, Expand 500, Scale 1,500+; legacy Pro, Business, Advanced, Individual, Volume", () => {
    const c = load("funnel-builder");
    const current = { base: 40, grow: 150, expand: 500, scale: 1500 };
    const legacy = { pro: 40, business: 150, advanced: 500, individual: 500, volume: 1500 };
    for (const [id, n] of Object.entries({ ...current, ...legacy })) {
      const isLegacy = id in legacy;
      for (const [pid, billing] of [[id, "month"], [`${id}-yearly`, "year"]] as const) {
        const p = c.plans.get(pid)!;
        expect(p, pid).toMatchObject({ creditsMicros: n * M, creditsPerSeatMicros: 0, unlimited: false, legacy: isLegacy, billing });
        expect(p.period, pid).toBe("month"); // "If you're on a yearly plan, your AI credits will still reset every month"
        // extra AI credits: recurring, shared, not for legacy plans
        expect([...p.addons.keys()], pid).toEqual(isLegacy ? [] : ["extra_credits"]);
        if (!isLegacy) expect(p.addons.get("extra_credits")).toMatchObject({ creditsPerUnitMicros: 50 * M, perSeat: false });
      }
    }
    expect(c.plans.size).toBe(18);
    expect(c.plans.get("base")!.name).toBe("Base");
    expect(resolvePlan(c, "grow-annual")!.id).toBe("grow-yearly");
    expect([...c.planAliases.keys()]).toEqual(["base-annual", "grow-annual", "expand-annual", "scale-annual"]);
    expect(addonCreditsMicros(c.plans.get("grow")!.addons.get("extra_credits")!, 2, 7) + planAllowanceMicros(c.plans.get("grow")!, 7)).toBe(250 * M);
  });

  test("landing-page-builder: Free 250, Starter 1,000, Pro 5,000 a month, no add-ons", () => {
    const c = load("landing-page-builder");
    expect(allowances(c)).toEqual({ free: [250, 0], starter: [1000, 0], pro: [5000, 0] });
    for (const p of c.plans.values()) expect(p).toMatchObject({ period: "month", billing: "month", legacy: false, unlimited: false, addons: new Map() });
    // the document's examples: 205 credits fit Free, 770 need Starter
    expect(planAllowanceMicros(c.plans.get("free")!, 1)).toBeGreaterThanOrEqual(205 * M);
    expect(planAllowanceMicros(c.plans.get("free")!, 1)).toBeLessThan(770 * M);
    expect(planAllowanceMicros(c.plans.get("starter")!, 1)).toBeGreaterThanOrEqual(770 * M);
  });

  test("video-studio (AI Studios): monthly and annual plans, per-user and shared add-on units", () => {
    const c = load("video-studio");
    expect(allowances(c)).toEqual({ free: [16, 0], personal: [60, 0], team: [0, 150], "personal-annual": [720, 0], "team-annual": [0, 1800] });
    for (const id of ["free", "personal", "team"]) expect(c.plans.get(id)).toMatchObject({ period: "month", billing: "month" });
    for (const id of ["personal-annual", "team-annual"]) expect(c.plans.get(id)).toMatchObject({ period: "year", billing: "year" }); // granted upfront
    const unit = (id: string): PlanAddon => c.plans.get(id)!.addons.get("unit")!;
    expect(unit("personal")).toMatchObject({ creditsPerUnitMicros: 60 * M, perSeat: true }); // per user
    expect(unit("team")).toMatchObject({ creditsPerUnitMicros: 200 * M, perSeat: false }); // shared across the workspace
    expect(unit("personal-annual")).toMatchObject({ creditsPerUnitMicros: 720 * M, perSeat: true }); // 12 × 60
    expect(unit("team-annual")).toMatchObject({ creditsPerUnitMicros: 2400 * M, perSeat: false }); // 12 × 200
    expect(c.plans.has("free") && c.plans.get("free")!.addons.size).toBe(0);
    expect(planAllowanceMicros(c.plans.get("team")!, 4)).toBe(600 * M); // 150 per seat
    expect(addonCreditsMicros(unit("team"), 2, 4)).toBe(400 * M);
    expect(addonCreditsMicros(unit("personal"), 2, 1)).toBe(120 * M);
    expect(resolvePlan(c, "team-yearly")!.id).toBe("team-annual");
    expect(resolvePlan(c, "personal-yearly")!.id).toBe("personal-annual");
    expect(c.plans.has("enterprise")).toBe(false); // custom allocations by contract: granted by an operator
  });

  test("crm-assistant (AI Employee): four pooled plans, each with the 14-day free trial", () => {
    const c = load("crm-assistant");
    expect([...c.plans.keys()]).toEqual(["starter", "professional", "scale", "enterprise"]);
    for (const p of c.plans.values()) {
      expect(p).toMatchObject({ period: "month", creditsPerSeatMicros: 0, unlimited: false, addons: new Map() }); // one pool; top-ups are one-time
      expect(p.trial).toEqual({ creditsMicros: 250 * M, days: 14 }); // credits assumed
    }
    // the allowances are assumed (the document says "AI included"); higher plans include more
    const credits = [...c.plans.values()].map((p) => p.creditsMicros);
    expect(credits).toEqual([...credits].sort((a, b) => a - b));
    expect(new Set(credits).size).toBe(4);
  });

  test("chatbot-platform (CleverAI): $0 100 credits, $29 5,000, Custom unlimited", () => {
    const c = load("chatbot-platform");
    expect(allowances(c)).toEqual({ free: [100, 0], pro: [5000, 0], enterprise: [0, 0] });
    expect(c.plans.get("enterprise")).toMatchObject({ unlimited: true, addons: new Map() });
    expect(planAllowanceMicros(c.plans.get("enterprise")!, 10)).toBe(0);
    for (const p of c.plans.values()) expect(p).toMatchObject({ period: "month", legacy: false });
  });

  test("every example plan stays exact at 100,000 seats with every add-on maxed", () => {
    for (const n of ["funnel-builder", "landing-page-builder", "video-studio", "crm-assistant", "chatbot-platform"]) {
      for (const p of load(n).plans.values()) expect(planWorstCaseMicros(p) <= BigInt(Number.MAX_SAFE_INTEGER), `${n} ${p.id}`).toBe(true);
    }
  });
});
