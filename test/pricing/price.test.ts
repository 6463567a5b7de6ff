import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { parseCatalog } from "../../src/pricing/catalog.js";
import { type PriceRequest, type PriceResult, PricingError, type Usage, priceRequest, priceUsage } from "../../src/pricing/price.js";

const catalog = parseCatalog(`
name: pricing rules
operations:
  rewrite: { price: 1 }
  avatar: { price: 0 }
  sync: { per_unit: 25, unit: sync, max_units: 4 }
  chat: { tokens: true, model: std, default_output_tokens: 100, max_output_tokens: 500 }
  chat-any: { tokens: true }
  chat-fee: { tokens: true, price: 0.5, model: std }
  image: { image: true }
  image-own: { price: 2, image: { sizes: { 10x10: 1 } } }
  video: { video: true }
models:
  std:
    input_per_1m: 2.5
    cached_input_per_1m: 1.25
    output_per_1m: 10
    aliases: [std-latest]
    patterns: ["std-*"]
    encoding: o200k_base
    default_output_tokens: 1000
    max_output_tokens: 4000
  thinker:
    input_per_1m: 1
    output_per_1m: 4
    reasoning_per_1m: 8
    encoding: o200k_base
    default_output_tokens: 1000
    max_output_tokens: 2000
  cheap-out:
    input_per_1m: 1
    output_per_1m: 4
    reasoning_per_1m: 2
    encoding: { fallback: cl100k_base }
    max_output_tokens: 1000
images:
  qualities: [standard, hd]
  max_count: 4
  sizes:
    1024x1024: { standard: 30, hd: 45 }
    2048x2048: 60
  tiers:
    - { max_megapixels: 0.5, price: { standard: 5, hd: 8 } }
    - { max_megapixels: 4.2, price: 70 }
video:
  tiers:
    premium: { per_second: 1 }
    basic: { per_second: 0 }
    pro: { per_second: 2.5 }
  default_tier: premium
  max_seconds: 60
`);

const price = (req: PriceRequest): PriceResult => priceRequest(catalog, req);
const total = (req: PriceRequest): bigint => price(req).totalMicros;
const C = 1_000_000n;

function fieldError(fn: () => unknown): { field: string; message: string } {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(PricingError);
    const pe = e as PricingError;
    expect(pe.message.startsWith(`${pe.field}: `)).toBe(true);
    return { field: pe.field, message: pe.message };
  }
  throw new Error("no error");
}

describe("operations", () => {
  test("a fixed price is one line item", () => {
    const r = price({ operation: "rewrite" });
    expect(r.items).toEqual([{ kind: "operation", description: "operation rewrite", quantity: 1n, unit: "request", unitPriceMicros: C, per: 1n, subtotalMicros: C }]);
    expect(r.totalMicros).toBe(C);
    expect(r.roundedFrom).toBeUndefined();
    expect(r.catalogVersion).toBe(catalog.version);
    expect(r.operation).toBe("rewrite");
  });

  test("a free operation is 0 and still has its line (it is usage)", () => {
    const r = price({ operation: "avatar" });
    expect(r.totalMicros).toBe(0n);
    expect(r.items).toHaveLength(1);
    expect(r.items[0]).toMatchObject({ kind: "operation", subtotalMicros: 0n });
  });

  test("per-unit pricing: units default to 1", () => {
    expect(total({ operation: "sync" })).toBe(25n * C);
    const r = price({ operation: "sync", units: 3 });
    expect(r.totalMicros).toBe(75n * C);
    expect(r.items[1]).toMatchObject({ kind: "units", description: "sync per sync", quantity: 3n, unit: "sync", unitPriceMicros: 25n * C });
    expect(fieldError(() => price({ operation: "sync", units: 0 })).message).toBe("units: must be an integer between 1 and 4");
    expect(fieldError(() => price({ operation: "sync", units: 5 })).field).toBe("units");
    expect(fieldError(() => price({ operation: "rewrite", units: 1 })).message).toBe('units: operation "rewrite" is not priced per unit');
    expect(fieldError(() => price({ model: "std", units: 1 })).message).toBe("units: needs an operation priced per unit");
  });

  test("unknown operation, empty request", () => {
    expect(fieldError(() => price({ operation: "nope" })).message).toBe('operation: unknown operation "nope"');
    expect(fieldError(() => price({})).message).toBe("operation: required: the request names no operation, model, image or video");
    expect(fieldError(() => price({ operation: "", model: "" })).field).toBe("operation"); // "" is absent
  });
});

describe("tokens", () => {
  test("per-token prices are exact (micros per 1M tokens) and each line rounds up to the micro", () => {
    const r = price({ operation: "chat", inputTokens: 1234, maxOutputTokens: 1 });
    expect(r.items[1]).toEqual({
      kind: "input_tokens",
      description: "std input tokens",
      quantity: 1234n,
      unit: "token",
      unitPriceMicros: 2_500_000n,
      per: 1_000_000n,
      subtotalMicros: 3085n, // 1234 × 2.5 credits / 1M = 0.003085 credits, exact
    });
    expect(r.items[2]).toMatchObject({ kind: "output_tokens", quantity: 1n, subtotalMicros: 10n });
    expect(total({ operation: "chat", inputTokens: 1, maxOutputTokens: 0 })).toBe(3n); // 2.5 micros → 3
  });

  test("worst case output: request's cap, else operation default, else model default; capped", () => {
    expect(price({ operation: "chat" }).maxOutputTokens).toBe(100); // operation default
    expect(price({ operation: "chat", maxOutputTokens: 300 }).maxOutputTokens).toBe(300);
    expect(price({ operation: "chat", maxOutputTokens: 9999 }).maxOutputTokens).toBe(500); // operation cap
    expect(price({ operation: "chat-any", model: "std" }).maxOutputTokens).toBe(1000); // model default
    expect(price({ operation: "chat-any", model: "std", maxOutputTokens: 9999 }).maxOutputTokens).toBe(4000); // model cap
    const r = price({ operation: "chat", inputTokens: 1000 });
    expect(r.items.map((i) => [i.kind, i.description, i.quantity, i.subtotalMicros])).toEqual([
      ["operation", "operation chat", 1n, 0n],
      ["input_tokens", "std input tokens", 1000n, 2500n],
      ["output_tokens", "std output tokens (worst case)", 100n, 1000n],
    ]);
    expect(r.totalMicros).toBe(3500n);
  });

  test("input and output are both counted; cached input at its own price", () => {
    const r = price({ operation: "chat", inputTokens: 1000, cachedInputTokens: 400, maxOutputTokens: 200 });
    expect(r.items.filter((i) => i.kind !== "operation").map((i) => [i.kind, i.quantity, i.subtotalMicros])).toEqual([
      ["input_tokens", 600n, 1500n],
      ["cached_input_tokens", 400n, 500n],
      ["output_tokens", 200n, 2000n],
    ]);
    expect(r.totalMicros).toBe(4000n);
    expect(fieldError(() => price({ operation: "chat", inputTokens: 10, cachedInputTokens: 11 })).message).toBe("cached_input_tokens: must be ≤ input_tokens (10)");
  });

  test("a fixed price adds to the tokens", () => {
    expect(total({ operation: "chat-fee", inputTokens: 1000, maxOutputTokens: 0 })).toBe(500_000n + 2_500n);
  });

  test("reasoning dearer than output: the budget (default all output) is priced at the reasoning price", () => {
    const all = price({ model: "thinker", maxOutputTokens: 1000 });
    expect(all.items.map((i) => [i.kind, i.quantity, i.subtotalMicros])).toEqual([["reasoning_tokens", 1000n, 8000n]]);
    const split = price({ model: "thinker", maxOutputTokens: 1000, reasoningTokens: 250 });
    expect(split.items.map((i) => [i.kind, i.quantity, i.subtotalMicros])).toEqual([
      ["output_tokens", 750n, 3000n],
      ["reasoning_tokens", 250n, 2000n],
    ]);
    // reasoning cheaper than output: the worst case is all output at the output price
    expect(price({ model: "cheap-out", maxOutputTokens: 1000, reasoningTokens: 500 }).items.map((i) => [i.kind, i.quantity])).toEqual([["output_tokens", 1000n]]);
    expect(fieldError(() => price({ model: "thinker", maxOutputTokens: 10, reasoningTokens: 11 })).message).toBe("reasoning_tokens: must be ≤ max_output_tokens (10)");
  });

  test("models by alias, pattern; unknown model refused; default model of the operation", () => {
    expect(price({ model: "std-latest", maxOutputTokens: 1 }).items[0]!.description).toBe("std-latest as std output tokens (worst case)");
    expect(price({ model: "std-2025-01-01", maxOutputTokens: 1 }).model).toMatchObject({ via: "pattern", model: { name: "std" } });
    expect(fieldError(() => price({ model: "gpt-9" })).message).toBe('model: unknown model "gpt-9" (this catalog refuses unknown models)');
    expect(fieldError(() => price({ operation: "chat-any" })).message).toBe('model: required (operation "chat-any" has no default model)');
    expect(price({ operation: "chat", model: "thinker", maxOutputTokens: 0 }).model!.model.name).toBe("thinker"); // request wins
  });

  test("unknown_models: price_as", () => {
    const c = parseCatalog(`unknown_models: { price_as: m }\nmodels:\n  m: { input_per_1m: 1, output_per_1m: 2, encoding: { fallback: cl100k_base }, max_output_tokens: 10 }\n`);
    const r = priceRequest(c, { model: "mystery", inputTokens: 1_000_000, maxOutputTokens: 0 });
    expect(r.items[0]).toMatchObject({ description: "mystery (priced as m) input tokens", subtotalMicros: C });
    expect(r.model).toMatchObject({ via: "unknown_models", requested: "mystery" });
  });

  test("an operation that is not token-priced ignores model and tokens (but they must still be sane counts)", () => {
    expect(total({ operation: "rewrite", model: "not-in-catalog", inputTokens: 99999, maxOutputTokens: 99999 })).toBe(C);
    expect(price({ operation: "rewrite", model: "std" }).model).toBeUndefined();
    expect(fieldError(() => price({ operation: "rewrite", inputTokens: -1 })).message).toBe("input_tokens: must be an integer between 0 and 100000000");
  });

  test.each([
    [{ inputTokens: -1 }, "input_tokens"],
    [{ inputTokens: 1.5 }, "input_tokens"],
    [{ inputTokens: Number.NaN }, "input_tokens"],
    [{ inputTokens: 100_000_001 }, "input_tokens"],
    [{ inputTokens: 10n ** 20n }, "input_tokens"],
    [{ cachedInputTokens: -3 }, "cached_input_tokens"],
    [{ maxOutputTokens: -1 }, "max_output_tokens"],
    [{ maxOutputTokens: 1e12 }, "max_output_tokens"],
    [{ reasoningTokens: -1 }, "reasoning_tokens"],
  ] as Array<[Partial<PriceRequest>, string]>)("negative or absurd counts: %o → %s", (extra, field) => {
    expect(fieldError(() => price({ operation: "chat", ...extra })).field).toBe(field);
  });

  test("bigint counts work like numbers", () => {
    expect(total({ operation: "chat", inputTokens: 1234n, maxOutputTokens: 1n })).toBe(total({ operation: "chat", inputTokens: 1234, maxOutputTokens: 1 }));
  });
});

describe("images", () => {
  test("exact size × quality × count", () => {
    const r = price({ operation: "image", image: { width: 1024, height: 1024, quality: "hd", count: 3 } });
    expect(r.items).toEqual([
      { kind: "operation", description: "operation image", quantity: 1n, unit: "request", unitPriceMicros: 0n, per: 1n, subtotalMicros: 0n },
      { kind: "image", description: "image 1024x1024 hd", quantity: 3n, unit: "image", unitPriceMicros: 45n * C, per: 1n, subtotalMicros: 135n * C },
    ]);
    expect(total({ operation: "image", image: { width: 1024, height: 1024 } })).toBe(30n * C); // default quality, count 1
    expect(total({ operation: "image", image: { width: 2048, height: 2048, quality: "hd" } })).toBe(60n * C); // one price for all qualities
  });

  test("megapixel tiers for sizes not listed", () => {
    expect(price({ operation: "image", image: { width: 512, height: 512 } }).items[1]).toMatchObject({ description: "image 512x512 (≤ 0.5 MP) standard", subtotalMicros: 5n * C });
    expect(total({ operation: "image", image: { width: 500, height: 1000, quality: "hd" } })).toBe(8n * C); // exactly 0.5 MP
    expect(total({ operation: "image", image: { width: 501, height: 1000 } })).toBe(70n * C);
    expect(total({ operation: "image", image: { width: 2048, height: 2050 } })).toBe(70n * C); // 4,198,400 px ≤ 4.2 MP
    expect(fieldError(() => price({ operation: "image", image: { width: 2100, height: 2100 } })).message).toBe(
      "image: no price for size 2100x2100 (sizes: 1024x1024, 2048x2048) and it is above the largest megapixel tier",
    );
  });

  test("no image pricing without operation uses the top-level table", () => {
    expect(total({ image: { width: 1024, height: 1024 } })).toBe(30n * C);
    expect(total({ operation: "image-own", image: { width: 10, height: 10, count: 2 } })).toBe(4n * C); // own table + fixed price
  });

  test.each([
    [{ width: 0, height: 0 }, "image.width: must be an integer between 1 and 16384"],
    [{ width: 100000, height: 100000 }, "image.width: must be an integer between 1 and 16384"],
    [{ width: 1024, height: 0 }, "image.height: must be an integer between 1 and 16384"],
    [{ width: 10.5, height: 10 }, "image.width: must be an integer between 1 and 16384"],
    [{ width: -1024, height: 1024 }, "image.width: must be an integer between 1 and 16384"],
    [{ width: 1024, height: 1024, quality: "ultra" }, 'image.quality: unknown quality "ultra" (qualities: standard, hd)'],
    [{ width: 1024, height: 1024, count: 0 }, "image.count: must be an integer between 1 and 4"],
    [{ width: 1024, height: 1024, count: 5 }, "image.count: must be an integer between 1 and 4"],
    [{ width: 1024, height: 1024, count: -2 }, "image.count: must be an integer between 1 and 4"],
  ])("bad image %o", (image, message) => {
    expect(fieldError(() => price({ operation: "image", image })).message).toBe(message);
  });

  test("image where none is priced, or missing where required", () => {
    expect(fieldError(() => price({ operation: "rewrite", image: { width: 1, height: 1 } })).message).toBe('image: operation "rewrite" is not priced by image');
    expect(fieldError(() => price({ operation: "image" })).message).toBe('image: required by operation "image"');
    const noImages = parseCatalog("operations: { a: { price: 1 } }");
    expect(fieldError(() => priceRequest(noImages, { image: { width: 1, height: 1 } })).message).toBe("image: this catalog has no image prices");
  });
});

describe("video", () => {
  test("seconds × the tier's per-second price; default tier; a free tier", () => {
    expect(price({ operation: "video", video: { seconds: 5 } }).items[1]).toEqual({
      kind: "video",
      description: "video premium",
      quantity: 5n,
      unit: "second",
      unitPriceMicros: C,
      per: 1n,
      subtotalMicros: 5n * C,
    });
    expect(total({ operation: "video", video: { seconds: 10, tier: "basic" } })).toBe(0n);
    expect(total({ operation: "video", video: { seconds: 4, tier: "pro" } })).toBe(10n * C);
    expect(total({ video: { seconds: 3 } })).toBe(3n * C);
  });

  test("seconds are billed rounded up to whole seconds; decimals are exact", () => {
    expect(price({ operation: "video", video: { seconds: 5.2 } }).items[1]!.quantity).toBe(6n);
    expect(total({ operation: "video", video: { seconds: "0.001" } })).toBe(C);
    expect(total({ operation: "video", video: { seconds: 5n } })).toBe(5n * C);
  });

  test.each([
    [{ seconds: 0 }, "video.seconds"],
    [{ seconds: -5 }, "video.seconds"],
    [{ seconds: 61 }, "video.seconds"],
    [{ seconds: 1.0001 }, "video.seconds"],
    [{ seconds: Number.POSITIVE_INFINITY }, "video.seconds"],
    [{ seconds: "ten" }, "video.seconds"],
    [{ seconds: 5, tier: "ultra" }, "video.tier"],
  ])("bad video %o", (video, field) => {
    expect(fieldError(() => price({ operation: "video", video })).field).toBe(field);
  });

  test("messages", () => {
    expect(fieldError(() => price({ operation: "video", video: { seconds: 5, tier: "ultra" } })).message).toBe('video.tier: unknown tier "ultra" (tiers: premium, basic, pro)');
    expect(fieldError(() => price({ operation: "video", video: { seconds: 61 } })).message).toBe("video.seconds: must be a number of seconds above 0 and at most 60 (at most 3 decimals)");
    expect(fieldError(() => price({ operation: "rewrite", video: { seconds: 1 } })).message).toBe('video: operation "rewrite" is not priced by video');
    expect(fieldError(() => price({ operation: "video" })).message).toBe('video: required by operation "video"');
  });
});

describe("rounding of the total", () => {
  const withRounding = (r: string): ReturnType<typeof parseCatalog> =>
    parseCatalog(`rounding: ${r}\noperations: { a: { price: 0.0001 }, b: { price: 2 } }\nmodels:\n  m: { input_per_1m: 2.5, output_per_1m: 10, encoding: o200k_base, max_output_tokens: 100 }\n`);

  test("none: micro precision", () => {
    const r = priceRequest(withRounding("none"), { operation: "a" });
    expect(r.totalMicros).toBe(100n);
    expect(r.roundedFrom).toBeUndefined();
  });

  test("up_to: 1 rounds up to whole credits and says from what", () => {
    const c = withRounding("{ up_to: 1 }");
    const r = priceRequest(c, { operation: "a" });
    expect(r.totalMicros).toBe(C);
    expect(r.roundedFrom).toBe(100n);
    const exact = priceRequest(c, { operation: "b" });
    expect(exact.totalMicros).toBe(2n * C);
    expect(exact.roundedFrom).toBeUndefined(); // already whole
  });

  test("up_to: 0.001", () => {
    const c = withRounding("{ up_to: 0.001 }");
    const r = priceRequest(c, { model: "m", inputTokens: 1001, maxOutputTokens: 0 }); // 2502.5 → 2503 micros per line
    expect(r.roundedFrom).toBe(2503n);
    expect(r.totalMicros).toBe(3000n);
  });

  test("rounding applies to the sum of the lines, which are each rounded up to the micro", () => {
    const c = withRounding("none");
    // 1 input token = 2.5 micros → 3, and 1 output token = 10 micros: 13, not ⌈12.5⌉
    const r = priceRequest(c, { model: "m", inputTokens: 1, maxOutputTokens: 1 });
    expect(r.items.map((i) => i.subtotalMicros)).toEqual([3n, 10n]);
    expect(r.totalMicros).toBe(13n);
  });
});

describe("max_credits", () => {
  test("a worst case at or under the limit passes; above it is refused with the amounts", () => {
    expect(total({ operation: "sync", units: 2, maxCreditsMicros: 50n * C })).toBe(50n * C);
    let err: PricingError | undefined;
    try {
      price({ operation: "sync", units: 2, maxCreditsMicros: 49_500_000n });
    } catch (e) {
      err = e as PricingError;
    }
    expect(err).toBeInstanceOf(PricingError);
    expect(err!.field).toBe("max_credits");
    expect(err!.reason).toBe("MAX_CREDITS_EXCEEDED");
    expect(err!.message).toBe("max_credits: the worst case, 50 credits, is above the limit of 49.5 credits");
    expect(err!.details).toEqual({ requiredMicros: 50n * C, maxCreditsMicros: 49_500_000n });
    expect(fieldError(() => price({ operation: "rewrite", maxCreditsMicros: -1n })).message).toBe("max_credits: must be ≥ 0");
  });

  test("the worst case counts max_output_tokens", () => {
    // 1000 in + 500 out worst case = 2500 + 5000 = 7500 micros
    expect(() => price({ operation: "chat", inputTokens: 1000, maxOutputTokens: 500, maxCreditsMicros: 7499n })).toThrow(PricingError);
    expect(total({ operation: "chat", inputTokens: 1000, maxOutputTokens: 500, maxCreditsMicros: 7500n })).toBe(7500n);
  });
});

describe("usage (Settle)", () => {
  const usage = (req: PriceRequest, u: Usage): PriceResult => priceUsage(catalog, req, u);

  test("tokens actually used; reasoning inside output; cached inside input", () => {
    const r = usage({ operation: "chat", inputTokens: 1000, maxOutputTokens: 500 }, { inputTokens: 1200, cachedInputTokens: 200, outputTokens: 300, reasoningTokens: 100 });
    expect(r.items.filter((i) => i.kind !== "operation").map((i) => [i.kind, i.description, i.quantity, i.subtotalMicros])).toEqual([
      ["input_tokens", "std input tokens", 1000n, 2500n],
      ["cached_input_tokens", "std cached input tokens", 200n, 250n],
      ["output_tokens", "std output tokens", 200n, 2000n],
      ["reasoning_tokens", "std reasoning tokens", 100n, 1000n],
    ]);
    expect(r.totalMicros).toBe(5750n);
    // usage above the cap is what happened: it is charged
    expect(usage({ operation: "chat", maxOutputTokens: 10 }, { inputTokens: 0, outputTokens: 1000 }).totalMicros).toBe(10_000n);
  });

  test("defaults: input from the request; cached from the request only when input is not reported", () => {
    const req = { operation: "chat", inputTokens: 1000, cachedInputTokens: 1000 };
    expect(usage(req, { outputTokens: 0 }).totalMicros).toBe(1250n);
    expect(usage(req, { inputTokens: 1000, outputTokens: 0 }).totalMicros).toBe(2500n);
  });

  test("usage errors name usage fields", () => {
    const req = { operation: "chat", inputTokens: 10 };
    expect(fieldError(() => usage(req, {})).message).toBe("usage.output_tokens: required for a token-priced request");
    expect(fieldError(() => usage(req, { outputTokens: -1 })).field).toBe("usage.output_tokens");
    expect(fieldError(() => usage(req, { outputTokens: 5, reasoningTokens: 6 })).message).toBe("usage.reasoning_tokens: must be ≤ output_tokens (5)");
    expect(fieldError(() => usage(req, { inputTokens: 5, cachedInputTokens: 6, outputTokens: 0 })).message).toBe("usage.cached_input_tokens: must be ≤ input_tokens (5)");
    expect(fieldError(() => usage(req, { inputTokens: 1e10, outputTokens: 0 })).field).toBe("usage.input_tokens");
  });

  test("images actually produced: 3 of 4 → 3", () => {
    const req = { operation: "image", image: { width: 1024, height: 1024, count: 4 } };
    expect(price(req).totalMicros).toBe(120n * C);
    const r = usage(req, { images: 3 });
    expect(r.totalMicros).toBe(90n * C);
    expect(r.items[1]).toMatchObject({ quantity: 3n, subtotalMicros: 90n * C });
    expect(usage(req, { images: 0 }).totalMicros).toBe(0n);
    expect(usage(req, {}).totalMicros).toBe(120n * C); // not reported: as requested
    expect(fieldError(() => usage(req, { images: 5 })).message).toBe("usage.images: must be an integer between 0 and 4");
    expect(fieldError(() => usage({ operation: "rewrite" }, { images: 1 })).message).toBe("usage.images: the request priced no images");
  });

  test("video seconds produced", () => {
    const req = { operation: "video", video: { seconds: 10 } };
    expect(usage(req, { videoSeconds: 7.5 }).totalMicros).toBe(8n * C);
    expect(usage(req, { videoSeconds: 0 }).totalMicros).toBe(0n);
    expect(usage(req, {}).totalMicros).toBe(10n * C);
    expect(fieldError(() => usage(req, { videoSeconds: 61 })).field).toBe("usage.video_seconds");
    expect(fieldError(() => usage({ operation: "rewrite" }, { videoSeconds: 1 })).field).toBe("usage.video_seconds");
  });

  test("units produced", () => {
    expect(usage({ operation: "sync", units: 3 }, { units: 2 }).totalMicros).toBe(50n * C);
    expect(usage({ operation: "sync", units: 3 }, {}).totalMicros).toBe(75n * C);
    expect(fieldError(() => usage({ operation: "rewrite" }, { units: 1 })).field).toBe("usage.units");
  });

  test("fixed prices are charged on usage too; token usage on a fixed operation is ignored", () => {
    expect(usage({ operation: "rewrite" }, { inputTokens: 5000, outputTokens: 5000 }).totalMicros).toBe(C);
    expect(usage({ operation: "avatar" }, {}).items).toHaveLength(1);
  });

  test("max_credits does not apply to usage (what happened is charged)", () => {
    expect(usage({ operation: "sync", units: 2, maxCreditsMicros: 1n }, {}).totalMicros).toBe(50n * C);
  });
});

describe("integer arithmetic", () => {
  test("every line is ⌈quantity × unit price / per⌉ and the total their sum (random requests)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 100_000_000 }),
        fc.integer({ min: 0, max: 100 }),
        fc.integer({ min: 0, max: 4000 }),
        (input, cachedPct, out) => {
          const cached = Math.floor((input * cachedPct) / 100);
          const r = price({ operation: "chat-any", model: "std", inputTokens: input, cachedInputTokens: cached, maxOutputTokens: out });
          for (const i of r.items) {
            expect(i.subtotalMicros * i.per >= i.quantity * i.unitPriceMicros).toBe(true);
            expect((i.subtotalMicros - 1n) * i.per < i.quantity * i.unitPriceMicros || i.subtotalMicros === 0n).toBe(true);
          }
          expect(r.totalMicros).toBe(r.items.reduce((a, i) => a + i.subtotalMicros, 0n));
          expect(typeof r.totalMicros).toBe("bigint");
        },
      ),
      { numRuns: 200 },
    );
  });

  test("a total above 2^53 − 1 micros is refused", () => {
    const c = parseCatalog("operations: { a: { per_unit: 1000000000, max_units: 1000000 } }");
    expect(fieldError(() => priceRequest(c, { operation: "a", units: 1_000_000 })).field).toBe("request");
  });
});
