import { describe, expect, test } from "vitest";
import { countWithSpec, type TokenizerSpec as MeteringSpec } from "../../src/metering/tokenizer.js";
import { CatalogError, catalogVersion, parseCatalog, resolveModel, tokenizerSpecOf } from "../../src/pricing/catalog.js";

/** Every problem of a bad catalog, as "path: message". */
function problems(yaml: string): string[] {
  try {
    parseCatalog(yaml);
  } catch (e) {
    expect(e).toBeInstanceOf(CatalogError);
    return (e as CatalogError).problems.map((p) => `${p.path}: ${p.message}`);
  }
  throw new Error("the catalog was accepted");
}

const MODEL = `
    input_per_1m: 1
    output_per_1m: 2
    encoding: o200k_base
    max_output_tokens: 100`;

describe("prices are read exactly from the source text", () => {
  test("YAML numbers and quoted strings, 0.1 + 0.2 style values", () => {
    const c = parseCatalog(`
operations:
  a: { price: 0.1 }
  b: { price: "0.2" }
  c: { price: 0.3 }
  d: { price: 1.10 }
  e: { price: 2.5e-3 }
  f: { price: 0 }
  g: { price: '123456789.123456' }
`);
    const p = (n: string): bigint => c.operations.get(n)!.priceMicros;
    expect(p("a") + p("b")).toBe(p("c"));
    expect(p("a")).toBe(100_000n);
    expect(p("d")).toBe(1_100_000n);
    expect(p("e")).toBe(2_500n);
    expect(p("f")).toBe(0n);
    expect(p("g")).toBe(123_456_789_123_456n);
  });

  test("digits a double would lose are kept (per-1K prices keep 9 decimals: micros per 1M tokens)", () => {
    const c = parseCatalog(`
models:
  m:
    input_per_1k: 9007199.254740993
    output_per_1k: 0.0025
    cached_input_per_1k: 0.000000001
    reasoning_per_1m: 0.000001
    encoding: cl100k_base
    max_output_tokens: 10
`);
    const m = c.models.get("m")!.prices;
    expect(m.inputPer1M).toBe(9_007_199_254_740_993n); // Number("9007199254740993") === 9007199254740992
    expect(m.outputPer1M).toBe(2_500_000n); // 0.0025 credits per 1K = 2.5 credits per 1M
    expect(m.cachedInputPer1M).toBe(1n);
    expect(m.reasoningPer1M).toBe(1n);
  });

  test("cached input defaults to the input price, reasoning to the output price", () => {
    const c = parseCatalog(`models:\n  m:${MODEL}\n`);
    expect(c.models.get("m")!.prices).toEqual({ inputPer1M: 1_000_000n, cachedInputPer1M: 1_000_000n, outputPer1M: 2_000_000n, reasoningPer1M: 2_000_000n });
  });

  test("YAML anchors and JSON syntax work", () => {
    const c = parseCatalog(`
operations:
  a: { price: &p 7 }
  b: { price: *p }
`);
    expect(c.operations.get("b")!.priceMicros).toBe(7_000_000n);
    const j = parseCatalog(`{"operations": {"x": {"price": "1.5"}}, "rounding": {"up_to": 1}}`);
    expect(j.operations.get("x")!.priceMicros).toBe(1_500_000n);
    expect(j.rounding).toEqual({ kind: "up_to", stepMicros: 1_000_000n });
  });
});

describe("the catalog's parts", () => {
  const c = parseCatalog(`
name: Test
description: a test catalog
rounding: { up_to: 0.001 }
unknown_models: { price_as: small-alias }
operations:
  sync: { per_unit: 25, unit: sync, max_units: 4 }
  chat: { tokens: true, model: "big-2025*", default_output_tokens: 10, max_output_tokens: 50 }
  img: { image: true, price: 1 }
  vid: { video: { tiers: { only: { per_second: 2 } } } }
models:
  big:
    input_per_1m: 10
    output_per_1m: 30
    patterns: ["big*"]
    encoding: o200k_base
    max_output_tokens: 1000
  big-mini:
    input_per_1m: 1
    output_per_1m: 3
    patterns: ["big-mini*"]
    encoding: cl100k_base
    default_output_tokens: 100
    max_output_tokens: 1000
  small:
    input_per_1m: 0.5
    output_per_1m: 1
    aliases: [small-alias, small-2]
    encoding: { fallback: cl100k_base, multiplier: 1.1 }
    max_output_tokens: 0
images:
  qualities: [low, high]
  default_quality: high
  sizes:
    1024x1024: { low: 1, high: 2 }
  tiers:
    - { max_megapixels: 1.05, price: 3 }
    - { price: { low: 4, high: 5 } }
video:
  tiers: { basic: { per_second: 0 }, premium: { per_second: 1 } }
  default_tier: premium
  max_seconds: 30
`);

  test("top level", () => {
    expect(c.name).toBe("Test");
    expect(c.description).toBe("a test catalog");
    expect(c.rounding).toEqual({ kind: "up_to", stepMicros: 1_000n });
    expect(c.unknownModels).toEqual({ kind: "price_as", model: "small" });
    expect(c.version).toMatch(/^[0-9a-f]{16}$/);
    expect(c.path).toBeUndefined();
  });

  test("operations", () => {
    expect(c.operations.get("sync")).toMatchObject({ priceMicros: 0n, perUnit: { priceMicros: 25_000_000n, unit: "sync", maxUnits: 4 }, tokens: false });
    expect(c.operations.get("chat")).toMatchObject({ tokens: true, model: "big-2025*", defaultOutputTokens: 10, maxOutputTokens: 50 });
    expect(c.operations.get("img")!.image).toBe(c.images); // image: true → the top-level table
    expect(c.operations.get("vid")!.video!.defaultTier).toBe("only"); // one tier: it is the default
  });

  test("models, tokenizers, caps", () => {
    const big = c.models.get("big")!;
    expect(big.defaultOutputTokens).toBe(1000); // default = max when not given
    expect(big.tokenizer).toEqual({ encoding: "o200k_base", estimate: false, label: "o200k_base" });
    expect(c.models.get("big-mini")!.tokenizer).toEqual({ encoding: "cl100k_base", estimate: false, label: "cl100k_base" });
    const small = c.models.get("small")!;
    expect(small.tokenizer).toEqual({ encoding: "cl100k_base", estimate: true, multiplier: "1.1", label: "cl100k_base*1.1" });
    expect(small.maxOutputTokens).toBe(0);
    expect(c.patterns.map((p) => p.prefix)).toEqual(["big-mini", "big"]); // longest first
  });

  test("model lookup: name, alias, longest prefix pattern, then unknown_models", () => {
    expect(resolveModel(c, "big")).toMatchObject({ via: "name", model: { name: "big" } });
    expect(resolveModel(c, "small-2")).toMatchObject({ via: "alias", model: { name: "small" } });
    expect(resolveModel(c, "big-mini-2025")).toMatchObject({ via: "pattern", model: { name: "big-mini" } });
    expect(resolveModel(c, "big-2025")).toMatchObject({ via: "pattern", model: { name: "big" } });
    expect(resolveModel(c, "who")).toMatchObject({ via: "unknown_models", requested: "who", model: { name: "small" } });
    expect(resolveModel(c, "BIG")?.via).toBe("unknown_models"); // names are case-sensitive
    const refusing = parseCatalog(`unknown_models: refuse\nmodels:\n  m:${MODEL}\n`);
    expect(resolveModel(refusing, "who")).toBeUndefined();
    expect(parseCatalog(`models:\n  m:${MODEL}\n`).unknownModels).toEqual({ kind: "refuse" }); // the default
  });

  test("images and video", () => {
    expect(c.images!.qualities).toEqual(["low", "high"]);
    expect(c.images!.defaultQuality).toBe("high");
    expect(c.images!.maxCount).toBe(10);
    expect(c.images!.sizes.get("1024x1024")).toEqual(new Map([["low", 1_000_000n], ["high", 2_000_000n]]));
    expect(c.images!.tiers).toEqual([
      { maxPixels: 1_050_000n, label: "≤ 1.05 MP", prices: new Map([["low", 3_000_000n], ["high", 3_000_000n]]) },
      { maxPixels: undefined, label: "any size", prices: new Map([["low", 4_000_000n], ["high", 5_000_000n]]) },
    ]);
    expect(c.video!.defaultTier).toBe("premium");
    expect(c.video!.maxSeconds).toBe(30);
    expect(c.video!.tiers.get("premium")!.perSecondMicros).toBe(1_000_000n);
  });

  test("image qualities default to [standard]", () => {
    const d = parseCatalog(`images: { sizes: { 512x512: 1 } }`);
    expect(d.images!.qualities).toEqual(["standard"]);
    expect(d.images!.defaultQuality).toBe("standard");
  });
});

describe("tokenizers: the model's own encoding, or a declared fallback", () => {
  const tokenizerOf = (encoding: string): unknown => parseCatalog(`models:\n  m: { input_per_1m: 1, output_per_1m: 1, max_output_tokens: 1, encoding: ${encoding} }\n`).models.get("m")!.tokenizer;

  test("a shipped encoding is exact", () => {
    expect(tokenizerOf("o200k_base")).toEqual({ encoding: "o200k_base", estimate: false, label: "o200k_base" });
    expect(tokenizerOf('"cl100k_base"')).toEqual({ encoding: "cl100k_base", estimate: false, label: "cl100k_base" });
  });

  test("a fallback is an estimate; the multiplier is optional, read exactly and normalized", () => {
    expect(tokenizerOf("{ fallback: cl100k_base }")).toEqual({ encoding: "cl100k_base", estimate: true, label: "cl100k_base" });
    expect(tokenizerOf("{ fallback: o200k_base, multiplier: 1 }")).toEqual({ encoding: "o200k_base", estimate: true, label: "o200k_base" });
    expect(tokenizerOf("{ fallback: cl100k_base, multiplier: 1.15 }")).toEqual({ encoding: "cl100k_base", estimate: true, multiplier: "1.15", label: "cl100k_base*1.15" });
    expect(tokenizerOf('{ fallback: cl100k_base, multiplier: "1.150" }')).toMatchObject({ multiplier: "1.15", label: "cl100k_base*1.15" });
    expect(tokenizerOf("{ fallback: cl100k_base, multiplier: 115e-2 }")).toMatchObject({ multiplier: "1.15" });
    expect(tokenizerOf("{ fallback: cl100k_base, multiplier: 0.000001 }")).toMatchObject({ multiplier: "0.000001" });
    expect(tokenizerOf("{ fallback: cl100k_base, multiplier: 10 }")).toMatchObject({ multiplier: "10", label: "cl100k_base*10" });
    // block form, and JSON
    const block = parseCatalog(`models:\n  m:\n    input_per_1m: 1\n    output_per_1m: 1\n    max_output_tokens: 1\n    encoding:\n      fallback: o200k_base\n      multiplier: 1.3\n`);
    expect(block.models.get("m")!.tokenizer.label).toBe("o200k_base*1.3");
    const json = parseCatalog(`{"models": {"m": {"input_per_1m": 1, "output_per_1m": 1, "max_output_tokens": 1, "encoding": {"fallback": "cl100k_base", "multiplier": "1.2"}}}}`);
    expect(json.models.get("m")!.tokenizer.label).toBe("cl100k_base*1.2");
  });

  test("tokenizerSpecOf is the metering TokenizerSpec: same count, same label, same estimated flag", () => {
    const c = parseCatalog(`models:
  exact: { input_per_1m: 1, output_per_1m: 1, max_output_tokens: 1, encoding: o200k_base }
  plain: { input_per_1m: 1, output_per_1m: 1, max_output_tokens: 1, encoding: { fallback: cl100k_base } }
  scaled: { input_per_1m: 1, output_per_1m: 1, max_output_tokens: 1, encoding: { fallback: cl100k_base, multiplier: 1.15 } }
`);
    expect(tokenizerSpecOf(c.models.get("exact")!)).toEqual({ encoding: "o200k_base", estimate: false });
    expect(tokenizerSpecOf(c.models.get("plain")!)).toEqual({ encoding: "cl100k_base", estimate: true });
    expect(tokenizerSpecOf(c.models.get("scaled")!)).toEqual({ encoding: "cl100k_base", estimate: true, multiplier: "1.15" });
    const text = "Claude's tokenizer is not shipped, so its counts are estimates made with a fallback encoding.";
    const base = countWithSpec(text, { encoding: "cl100k_base" }).tokens;
    for (const m of c.models.values()) {
      const spec: MeteringSpec = tokenizerSpecOf(m); // assignable without a cast
      const count = countWithSpec(text, spec);
      expect(count.tokenizer).toBe(m.tokenizer.label);
      expect(count.estimated).toBe(m.tokenizer.estimate);
      if (m.name === "scaled") expect(count.tokens).toBe(Math.ceil((base * 115) / 100));
      if (m.name === "plain") expect(count.tokens).toBe(base);
    }
  });
});

describe("version", () => {
  test("computed from the content: same text same version, any edit a new one", () => {
    const a = "operations: { x: { price: 1 } }\n";
    expect(parseCatalog(a).version).toBe(parseCatalog(a).version);
    expect(parseCatalog(a).version).toBe(catalogVersion(a));
    expect(parseCatalog(a + "# comment\n").version).not.toBe(parseCatalog(a).version);
  });
});

describe("validation: every error names the path of the bad entry", () => {
  test("the issue's example", () => {
    expect(problems(`models:\n  gpt-4o: { input_per_1m: 2.5, output_per_1m: -10, encoding: o200k_base, max_output_tokens: 10 }\n`)).toEqual([
      'models["gpt-4o"].output_per_1m: must be ≥ 0',
    ]);
  });

  test("all errors are collected into one CatalogError, with lines", () => {
    const yaml = `operations:
  a: { price: -1 }
  b: { price: 1.0000001 }
  c: { prize: 1 }
`;
    let err: CatalogError | undefined;
    try {
      parseCatalog(yaml, { file: "/x/c.yaml" });
    } catch (e) {
      err = e as CatalogError;
    }
    expect(err).toBeInstanceOf(CatalogError);
    expect(err!.problems).toHaveLength(4);
    expect(err!.problems[0]).toEqual({ path: 'operations["a"].price', message: "must be ≥ 0", line: 2 });
    expect(err!.file).toBe("/x/c.yaml");
    expect(err!.message).toBe(
      [
        "invalid catalog /x/c.yaml:",
        '  operations["a"].price: must be ≥ 0 (line 2)',
        '  operations["b"].price: must have at most 6 decimal places, got "1.0000001" (line 3)',
        '  operations["c"].prize: unknown field (expected one of: description, price, per_unit, unit, max_units, tokens, model, default_output_tokens, max_output_tokens, image, video) (line 4)',
        '  operations["c"]: must declare price, per_unit, tokens, image or video (price: 0 for a free operation) (line 4)',
      ].join("\n"),
    );
  });

  test.each([
    // the file
    ["", "(file): is empty"],
    ["operations: [\n", "(file): YAML syntax"],
    ["operations: { a: { price: 1 } }\noperations: {}\n", "(file): YAML syntax: Map keys must be unique"],
    ["- 1\n- 2\n", "(file): must be a mapping"],
    ["name: x\n", "(file): declares nothing to price: give operations, models, images or video"],
    ["version: abc\noperations: { a: { price: 1 } }\n", "version: unknown field (expected one of: name, description, rounding, unknown_models, operations, models, images, video, plans)"],
    ["name: 5\noperations: { a: { price: 1 } }\n", "name: must be a non-empty string"],
    // prices
    ["operations: { a: { price: 1e-7 } }", 'operations["a"].price: must have at most 6 decimal places, got "1e-7"'],
    ["operations: { a: { price: .nan } }", 'operations["a"].price: must be a finite decimal number, got .nan'],
    ["operations: { a: { price: .inf } }", 'operations["a"].price: must be a finite decimal number, got .inf'],
    ["operations: { a: { price: 0x10 } }", 'operations["a"].price: must be a decimal number, got "0x10"'],
    ["operations: { a: { price: '-0.5' } }", 'operations["a"].price: must be ≥ 0'],
    ["operations: { a: { price: free } }", 'operations["a"].price: must be a decimal number, got "free"'],
    ["operations: { a: { price: true } }", 'operations["a"].price: must be a number of credits'],
    ["operations: { a: { price: [1] } }", 'operations["a"].price: must be a number of credits'],
    ["operations: { a: { price: 1000000001 } }", 'operations["a"].price: must be ≤ 1000000000'],
    ["operations: { a: { price: 1e41 } }", 'operations["a"].price: is too large or too precise: "1e41"'],
    // rounding
    ["rounding: up\noperations: { a: { price: 1 } }", "rounding: must be \"none\" or { up_to: <credits> } (e.g. { up_to: 1 } for whole credits)"],
    ["rounding: { up_to: 0 }\noperations: { a: { price: 1 } }", "rounding.up_to: must be > 0"],
    ["rounding: {}\noperations: { a: { price: 1 } }", "rounding.up_to: required (credits to round the total up to, e.g. 1 or 0.001)"],
    ["rounding: { down_to: 1, up_to: 1 }\noperations: { a: { price: 1 } }", "rounding.down_to: unknown field (expected one of: up_to)"],
    // operations
    ["operations: []", "operations: must be a mapping"],
    ["operations: { a: 5 }", 'operations["a"]: must be a mapping'],
    ["operations: { 'bad name': { price: 1 } }", 'operations["bad name"]: an operation name is 1-128 characters'],
    ["operations: { a: {} }", 'operations["a"]: must declare price, per_unit, tokens, image or video (price: 0 for a free operation)'],
    ["operations: { a: { price: 1, unit: page } }", 'operations["a"].unit: only applies with per_unit'],
    ["operations: { a: { price: 1, max_units: 3 } }", 'operations["a"].max_units: only applies with per_unit'],
    ["operations: { a: { per_unit: 1, max_units: 0 } }", 'operations["a"].max_units: must be an integer between 1 and 1000000000'],
    ["operations: { a: { per_unit: 1, unit: '' } }", 'operations["a"].unit: must be a non-empty string'],
    ["operations: { a: { tokens: yes } }", 'operations["a"].tokens: must be true or false'],
    ["operations: { a: { price: 1, model: m } }\nmodels:\n  m:" + MODEL, 'operations["a"].model: only applies with tokens: true'],
    ["operations: { a: { tokens: true, model: zz } }\nmodels:\n  m:" + MODEL, 'operations["a"].model: unknown model "zz" (must match a model of this catalog)'],
    ["operations: { a: { price: 1, max_output_tokens: 5 } }", 'operations["a"].max_output_tokens: only applies with tokens: true'],
    ["operations: { a: { tokens: true, max_output_tokens: 5, default_output_tokens: 6 } }\nmodels:\n  m:" + MODEL, 'operations["a"].default_output_tokens: must be ≤ max_output_tokens (5)'],
    ["operations: { a: { tokens: true, max_output_tokens: -5 } }\nmodels:\n  m:" + MODEL, 'operations["a"].max_output_tokens: must be an integer between 0 and 100000000'],
    ["operations: { a: { tokens: true, max_output_tokens: 1.5 } }\nmodels:\n  m:" + MODEL, 'operations["a"].max_output_tokens: must be an integer between 0 and 100000000'],
    ["operations: { a: { image: true } }", 'operations["a"].image: true needs a top-level images section (or give the table here)'],
    ["operations: { a: { video: true } }", 'operations["a"].video: true needs a top-level video section (or give the table here)'],
    ["operations: { a: { image: 5 } }", 'operations["a"].image: must be true or an image price table'],
    ["operations: { a: { tokens: true } }", 'operations["a"].tokens: needs token prices: the catalog declares no models'],
    ["operations: { a: { image: { sizes: { 1x1: -1 } } } }", 'operations["a"].image.sizes["1x1"]: must be ≥ 0'],
    // models
    ["models: { m: { output_per_1m: 1, encoding: o200k_base, max_output_tokens: 1 } }", 'models["m"].input_per_1m: required (or input_per_1k)'],
    ["models: { m: { input_per_1m: 1, encoding: o200k_base, max_output_tokens: 1 } }", 'models["m"].output_per_1m: required (or output_per_1k)'],
    ["models: { m: { input_per_1m: 1, input_per_1k: 1, output_per_1m: 1, encoding: o200k_base, max_output_tokens: 1 } }", 'models["m"].input_per_1m: give either input_per_1m or input_per_1k, not both'],
    ["models: { m: { input_per_1m: 1, output_per_1k: 0.0000000001, encoding: o200k_base, max_output_tokens: 1 } }", 'models["m"].output_per_1k: must have at most 9 decimal places'],
    ["models: { m: { input_per_1m: 1, output_per_1m: 1, cached_input_per_1m: -1, encoding: o200k_base, max_output_tokens: 1 } }", 'models["m"].cached_input_per_1m: must be ≥ 0'],
    ["models: { m: { input_per_1m: 1, output_per_1m: 1, reasoning_per_1m: x, encoding: o200k_base, max_output_tokens: 1 } }", 'models["m"].reasoning_per_1m: must be a decimal number, got "x"'],
    ["models: { m: { input_per_1m: 1, ouput_per_1m: 1, output_per_1m: 1, encoding: o200k_base, max_output_tokens: 1 } }", 'models["m"].ouput_per_1m: unknown field'],
    ["models: { m: { input_per_1m: 1, output_per_1m: 1, max_output_tokens: 1 } }", 'models["m"].encoding: required: o200k_base or cl100k_base, or { fallback: <encoding>, multiplier: <number> } for a model whose tokenizer is not shipped'],
    ["models: { m: { input_per_1m: 1, output_per_1m: 1, encoding: p50k, max_output_tokens: 1 } }", 'models["m"].encoding: unknown encoding "p50k" (o200k_base or cl100k_base, or { fallback: <encoding>, multiplier: <number> } for a model whose tokenizer is not shipped)'],
    ["models: { m: { input_per_1m: 1, output_per_1m: 1, encoding: estimate, max_output_tokens: 1 } }", 'models["m"].encoding: unknown encoding "estimate" (o200k_base or cl100k_base, or { fallback:'],
    ["models: { m: { input_per_1m: 1, output_per_1m: 1, encoding: 5, max_output_tokens: 1 } }", 'models["m"].encoding: must be o200k_base or cl100k_base, or { fallback: <encoding>, multiplier: <number> }'],
    ["models: { m: { input_per_1m: 1, output_per_1m: 1, encoding: [o200k_base], max_output_tokens: 1 } }", 'models["m"].encoding: must be o200k_base or cl100k_base, or { fallback:'],
    ["models: { m: { input_per_1m: 1, output_per_1m: 1, encoding: , max_output_tokens: 1 } }", 'models["m"].encoding: must be o200k_base or cl100k_base, or { fallback:'],
    ["models: { m: { input_per_1m: 1, output_per_1m: 1, encoding: o200k_base, token_multiplier: 1.1, max_output_tokens: 1 } }", 'models["m"].token_multiplier: unknown field'],
    ["models: { m: { input_per_1m: 1, output_per_1m: 1, encoding: o200k_base, chars_per_token: 4, max_output_tokens: 1 } }", 'models["m"].chars_per_token: unknown field'],
    ["models: { m: { input_per_1m: 1, output_per_1m: 1, encoding: { multiplier: 1.15 }, max_output_tokens: 1 } }", 'models["m"].encoding.fallback: required (the shipped encoding to estimate with: o200k_base or cl100k_base)'],
    ["models: { m: { input_per_1m: 1, output_per_1m: 1, encoding: { fallback: llama3 }, max_output_tokens: 1 } }", 'models["m"].encoding.fallback: unknown encoding "llama3" (one of o200k_base, cl100k_base)'],
    ["models: { m: { input_per_1m: 1, output_per_1m: 1, encoding: { fallback: { a: 1 } }, max_output_tokens: 1 } }", 'models["m"].encoding.fallback: must be a non-empty string'],
    ["models: { m: { input_per_1m: 1, output_per_1m: 1, encoding: { fallback: cl100k_base, chars_per_token: 3.5 }, max_output_tokens: 1 } }", 'models["m"].encoding.chars_per_token: unknown field (expected one of: fallback, multiplier)'],
    ['models: { "claude-sonnet-4": { input_per_1m: 1, output_per_1m: 1, encoding: { fallback: cl100k_base, multiplier: 0 }, max_output_tokens: 1 } }', 'models["claude-sonnet-4"].encoding.multiplier: must be > 0'],
    ["models: { m: { input_per_1m: 1, output_per_1m: 1, encoding: { fallback: cl100k_base, multiplier: -1.15 }, max_output_tokens: 1 } }", 'models["m"].encoding.multiplier: must be > 0'],
    ["models: { m: { input_per_1m: 1, output_per_1m: 1, encoding: { fallback: cl100k_base, multiplier: 10.000001 }, max_output_tokens: 1 } }", 'models["m"].encoding.multiplier: must be ≤ 10'],
    ["models: { m: { input_per_1m: 1, output_per_1m: 1, encoding: { fallback: cl100k_base, multiplier: 1.0000001 }, max_output_tokens: 1 } }", 'models["m"].encoding.multiplier: must have at most 6 decimal places, got "1.0000001"'],
    ["models: { m: { input_per_1m: 1, output_per_1m: 1, encoding: { fallback: cl100k_base, multiplier: .inf }, max_output_tokens: 1 } }", 'models["m"].encoding.multiplier: must be a finite decimal number, got .inf'],
    ["models: { m: { input_per_1m: 1, output_per_1m: 1, encoding: { fallback: cl100k_base, multiplier: lots }, max_output_tokens: 1 } }", 'models["m"].encoding.multiplier: must be a decimal number, got "lots"'],
    ["models: { m: { input_per_1m: 1, output_per_1m: 1, encoding: { fallback: cl100k_base, multiplier: true }, max_output_tokens: 1 } }", 'models["m"].encoding.multiplier: must be a decimal number like 1.15'],
    ["models: { m: { input_per_1m: 1, output_per_1m: 1, encoding: o200k_base } }", 'models["m"].max_output_tokens: required (every hold must be bounded)'],
    ["models: { m: { input_per_1m: 1, output_per_1m: 1, encoding: o200k_base, max_output_tokens: 100000001 } }", 'models["m"].max_output_tokens: must be an integer between 0 and 100000000'],
    ["models: { m: { input_per_1m: 1, output_per_1m: 1, encoding: o200k_base, max_output_tokens: 10, default_output_tokens: 11 } }", 'models["m"].default_output_tokens: must be ≤ max_output_tokens (10)'],
    ["models: { 'gpt*': { input_per_1m: 1, output_per_1m: 1, encoding: o200k_base, max_output_tokens: 1 } }", 'models["gpt*"]: a model name is 1-200 characters without spaces or * (use patterns for prefixes)'],
    ["models: { m: { input_per_1m: 1, output_per_1m: 1, encoding: o200k_base, max_output_tokens: 1, aliases: x } }", 'models["m"].aliases: must be a list of strings'],
    ["models: { m: { input_per_1m: 1, output_per_1m: 1, encoding: o200k_base, max_output_tokens: 1, patterns: [gpt] } }", 'models["m"].patterns[0]: must be a prefix followed by one *, like "gpt-4o*", got "gpt"'],
    ["models: { m: { input_per_1m: 1, output_per_1m: 1, encoding: o200k_base, max_output_tokens: 1, patterns: ['g*p*'] } }", 'models["m"].patterns[0]: must be a prefix followed by one *'],
    ["models: { m: { input_per_1m: 1, output_per_1m: 1, encoding: o200k_base, max_output_tokens: 1, aliases: [n] }, n: { input_per_1m: 1, output_per_1m: 1, encoding: o200k_base, max_output_tokens: 1 } }", 'models["m"].aliases[0]: "n" is already a model name'],
    ["models: { m: { input_per_1m: 1, output_per_1m: 1, encoding: o200k_base, max_output_tokens: 1, aliases: [a] }, n: { input_per_1m: 1, output_per_1m: 1, encoding: o200k_base, max_output_tokens: 1, aliases: [a] } }", 'models["n"].aliases[0]: "a" is already an alias of m'],
    ["models: { m: { input_per_1m: 1, output_per_1m: 1, encoding: o200k_base, max_output_tokens: 1, patterns: ['a*'] }, n: { input_per_1m: 1, output_per_1m: 1, encoding: o200k_base, max_output_tokens: 1, patterns: ['a*'] } }", 'models["n"].patterns[0]: "a*" is already a pattern of m'],
    ["unknown_models: { price_as: zz }\nmodels:\n  m:" + MODEL, 'unknown_models.price_as: unknown model "zz" (must be a model of this catalog)'],
    ["unknown_models: allow\nmodels:\n  m:" + MODEL, 'unknown_models: must be "refuse" or { price_as: <model> }'],
    ["unknown_models: {}\nmodels:\n  m:" + MODEL, "unknown_models.price_as: required (the model to price unknown models as)"],
    // images
    ["images: { qualities: [a] }", "images: must declare sizes or tiers (or both)"],
    ["images: { sizes: { 1024: 1 } }", 'images.sizes["1024"]: must be WIDTHxHEIGHT with sides between 1 and 16384, like 1024x1024'],
    ["images: { sizes: { 0x0: 1 } }", 'images.sizes["0x0"]: must be WIDTHxHEIGHT with sides between 1 and 16384'],
    ["images: { sizes: { 20000x10: 1 } }", 'images.sizes["20000x10"]: must be WIDTHxHEIGHT with sides between 1 and 16384'],
    ["images: { qualities: [sd, hd], sizes: { 1x1: { sd: 1 } } }", 'images.sizes["1x1"]: missing a price for quality "hd"'],
    ["images: { qualities: [sd, hd], sizes: { 1x1: { sd: 1, hd: 2, uhd: 3 } } }", 'images.sizes["1x1"]["uhd"]: unknown quality (qualities: sd, hd)'],
    ["images: { qualities: [sd, sd], sizes: { 1x1: 1 } }", 'images.qualities[1]: "sd" is listed twice'],
    ["images: { qualities: [], sizes: { 1x1: 1 } }", "images.qualities: must list at least one quality"],
    ["images: { default_quality: hd, sizes: { 1x1: 1 } }", 'images.default_quality: unknown quality "hd" (qualities: standard)'],
    ["images: { max_count: 0, sizes: { 1x1: 1 } }", "images.max_count: must be an integer between 1 and 1000"],
    ["images: { tiers: { a: 1 } }", "images.tiers: must be a list of { max_megapixels, price }"],
    ["images: { tiers: [ { max_megapixels: 1 } ] }", "images.tiers[0].price: required"],
    ["images: { tiers: [ { price: 1 }, { max_megapixels: 2, price: 2 } ] }", "images.tiers[0].max_megapixels: required (only the last tier may omit it, to cover any size)"],
    ["images: { tiers: [ { max_megapixels: 2, price: 1 }, { max_megapixels: 1, price: 2 } ] }", "images.tiers[1].max_megapixels: must be larger than the previous tier's"],
    ["images: { tiers: [ { max_megapixels: 0, price: 1 } ] }", "images.tiers[0].max_megapixels: must be > 0"],
    ["images: { tiers: [ { max_megapixels: 1, price: 1, size: 3 } ] }", "images.tiers[0].size: unknown field (expected one of: max_megapixels, price)"],
    // video
    ["video: {}", "video.tiers: required"],
    ["video: { tiers: {} }", "video.tiers: must declare at least one tier"],
    ["video: { tiers: { a: { per_second: 1 }, b: { per_second: 2 } } }", "video.default_tier: required when there is more than one tier"],
    ["video: { tiers: { a: { per_second: 1 } }, default_tier: b }", 'video.default_tier: unknown tier "b" (tiers: a)'],
    ["video: { tiers: { a: { per_second: -1 } } }", 'video.tiers["a"].per_second: must be ≥ 0'],
    ["video: { tiers: { a: {} } }", 'video.tiers["a"].per_second: required (credits per second; 0 for a free tier)'],
    ["video: { tiers: { a: 1 } }", 'video.tiers["a"]: must be a mapping'],
    ["video: { tiers: { a: { per_second: 1 } }, max_seconds: 0 }", "video.max_seconds: must be an integer between 1 and 86400"],
  ])("%j → %s", (yaml, want) => {
    const got = problems(yaml);
    expect(got.some((p) => p.startsWith(want)), `got:\n${got.join("\n")}`).toBe(true);
  });
});
