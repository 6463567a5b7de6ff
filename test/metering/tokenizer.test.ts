// Counts of the chosen engine (tiktoken) against the other one (gpt-tokenizer, a dev dependency), on varied text
// and in both encodings; the long-run guard; the exact estimate arithmetic.
import { describe, expect, it } from "vitest";
import * as gptCl100k from "gpt-tokenizer/encoding/cl100k_base";
import * as gptO200k from "gpt-tokenizer/encoding/o200k_base";
import {
  ENCODINGS,
  MAX_RUN_BYTES,
  applyMultiplier,
  countRaw,
  countTokens,
  countWithSpec,
  multiplierFromMillionths,
  parseMultiplier,
  segmentsOf,
  type Encoding,
} from "../../src/metering/tokenizer.js";
import { code, cjk, emoji, english, mixed, randomLetters } from "./texts.js";

const ORDINARY = { disallowedSpecial: new Set<string>() };
const other: Record<Encoding, (text: string) => number> = {
  o200k_base: (t) => gptO200k.countTokens(t, ORDINARY),
  cl100k_base: (t) => gptCl100k.countTokens(t, ORDINARY),
};

const EDGE_CASES = [
  "",
  " ",
  "a",
  "Hello, world!",
  "tiktoken is great!",
  "antidisestablishmentarianism",
  "2 + 2 = 4",
  "お誕生日おめでとう",
  "<|endoftext|>",
  "before <|endoftext|> after <|im_start|>system<|im_sep|>",
  "\u0000\u0001\u0002",
  "a\uD800b", // lone surrogate
  "\r\n\r\n  \t\n",
  "     leading and trailing     ",
  "naïve café".normalize("NFD"),
  "👨‍👩‍👧‍👦🏳️‍🌈🇯🇵",
  "12345678901234567890",
  "don't won't I'll they've she'd WE'RE",
  "function f(x) {\n\treturn x ** 2; // square\n}\n",
];

const SAMPLES: [string, string][] = [
  ["English prose", english(20_000)],
  ["code", code(20_000)],
  ["CJK", cjk(20_000)],
  ["emoji", emoji(20_000)],
  ["mixed", mixed(20_000)],
];
const LONG_MIXED = mixed(256 * 1024, 42);

describe.each(ENCODINGS)("%s counts equal gpt-tokenizer's", (encoding) => {
  it("on edge cases", () => {
    for (const text of EDGE_CASES) expect(countTokens(text, encoding), JSON.stringify(text)).toBe(other[encoding](text));
  });

  it.each(SAMPLES)("on %s", (_name, text) => {
    const c = countRaw(text, encoding);
    expect(c.approximate).toBe(false);
    expect(c.tokens).toBe(other[encoding](text));
    expect(c.tokens).toBeGreaterThan(1000);
  });

  it("on a 256 KiB mixed text", () => {
    expect(Buffer.byteLength(LONG_MIXED)).toBeGreaterThanOrEqual(200 * 1024);
    const c = countRaw(LONG_MIXED, encoding);
    expect(c.approximate).toBe(false);
    expect(c.tokens).toBe(other[encoding](LONG_MIXED));
  });
});

describe("long runs", () => {
  it("ordinary text is never cut", () => {
    for (const [, text] of SAMPLES) expect(segmentsOf(text)).toEqual([text]);
    expect(segmentsOf(LONG_MIXED)).toHaveLength(1);
    expect(segmentsOf("x".repeat(MAX_RUN_BYTES - 1))).toHaveLength(1);
  });

  it("a run over MAX_RUN_BYTES of letters, spaces, symbols, emoji or ideographs is cut, without splitting a pair", () => {
    for (const run of ["x".repeat(5000), " ".repeat(5000), "!".repeat(5000), "😀".repeat(2000), "的".repeat(2000), "é".repeat(3000)]) {
      const text = `start ${run} end`;
      const segs = segmentsOf(text);
      expect(segs.length).toBeGreaterThan(1);
      expect(segs.join("")).toBe(text);
      for (const s of segs) {
        expect(Buffer.byteLength(s)).toBeLessThanOrEqual(MAX_RUN_BYTES + 8);
        expect(/^[\uDC00-\uDFFF]/.test(s)).toBe(false);
      }
    }
  });

  it("a cut run is counted close to the exact count and flagged approximate", () => {
    const text = `Some words before. ${randomLetters(6000)} and after.`;
    const exact = other.o200k_base(text);
    const c = countRaw(text, "o200k_base");
    expect(c.approximate).toBe(true);
    expect(Math.abs(c.tokens - exact)).toBeLessThanOrEqual(exact * 0.01 + 6);
  });

  it("keeps a 256 KiB run without spaces linear (unbounded BPE would take minutes)", () => {
    const text = randomLetters(256 * 1024, 9);
    const t0 = performance.now();
    const c = countRaw(text, "cl100k_base");
    expect(performance.now() - t0).toBeLessThan(3000);
    expect(c.approximate).toBe(true);
    expect(c.tokens).toBeGreaterThan(100_000);
  });
});

describe("estimates", () => {
  it("parses decimal multipliers exactly", () => {
    expect(parseMultiplier("1.15")).toMatchObject({ numerator: 115n, denominator: 100n });
    expect(parseMultiplier("2")).toMatchObject({ numerator: 2n, denominator: 1n });
    for (const bad of ["", "0", "0.000", "-1", "1e3", "1.1234567", " 1", "1.", ".5", "abc", "1,5"]) {
      expect(() => parseMultiplier(bad), bad).toThrow(RangeError);
    }
  });

  it("rounds up with integer arithmetic (100 × 1.1 is 110, not 111)", () => {
    expect(Math.ceil(100 * 1.1)).toBe(111); // what binary floating point would charge
    expect(applyMultiplier(100, parseMultiplier("1.1"))).toBe(110);
    expect(applyMultiplier(101, parseMultiplier("1.15"))).toBe(117); // 116.15 → 117
    expect(applyMultiplier(3, parseMultiplier("0.1"))).toBe(1);
    expect(applyMultiplier(0, parseMultiplier("1.5"))).toBe(0);
    expect(applyMultiplier(9_000_000, parseMultiplier("999999.999999"))).toBe(8_999_999_999_991);
  });

  it("says what counted and whether it is an estimate", () => {
    const text = "Claude and Llama tokenizers are not shipped, so this is an estimate.";
    const exact = countWithSpec(text, { encoding: "o200k_base" });
    expect(exact).toEqual({ tokens: countTokens(text, "o200k_base"), estimated: false, tokenizer: "o200k_base" });
    const plain = countWithSpec(text, { encoding: "cl100k_base", estimate: true });
    expect(plain).toEqual({ tokens: countTokens(text, "cl100k_base"), estimated: true, tokenizer: "cl100k_base" });
    const scaled = countWithSpec(text, { encoding: "cl100k_base", estimate: true, multiplier: "1.25" });
    expect(scaled).toEqual({
      tokens: Math.ceil((countTokens(text, "cl100k_base") * 125) / 100),
      estimated: true,
      tokenizer: "cl100k_base*1.25",
    });
    // a multiplier on a shipped encoding makes an estimate too; "1" is no multiplier
    const scaledExact = countWithSpec(text, { encoding: "o200k_base", multiplier: multiplierFromMillionths(1_100_000n) });
    expect(scaledExact).toEqual({
      tokens: Math.ceil((countTokens(text, "o200k_base") * 11) / 10),
      estimated: true,
      tokenizer: "o200k_base*1.1",
    });
    expect(countWithSpec(text, { encoding: "o200k_base", multiplier: "1" })).toEqual(exact);
    expect(() => countWithSpec(text, { encoding: "p50k_base" as Encoding })).toThrow(RangeError);
    expect(() => countWithSpec(text, { encoding: "o200k_base", multiplier: "-2" })).toThrow(RangeError);
  });

  it("takes a catalog's multiplier in millionths", () => {
    expect(multiplierFromMillionths(1_000_000n).text).toBe("1");
    expect(multiplierFromMillionths(1_150_000n)).toEqual({ text: "1.15", numerator: 1_150_000n, denominator: 1_000_000n });
    expect(multiplierFromMillionths(500n).text).toBe("0.0005");
    expect(() => multiplierFromMillionths(0n)).toThrow(RangeError);
  });
});
