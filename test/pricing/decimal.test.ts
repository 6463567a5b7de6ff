import { describe, expect, test } from "vitest";
import { ceilDiv, creditsToMicros, formatCredits, formatScaled, parseScaledDecimal } from "../../src/pricing/decimal.js";

const micros = (s: string): bigint => {
  const r = parseScaledDecimal(s, 6);
  if (!r.ok) throw new Error(r.error);
  return r.value;
};
const error = (s: string, scale = 6): string => {
  const r = parseScaledDecimal(s, scale);
  if (r.ok) throw new Error(`${s} parsed to ${r.value}`);
  return r.error;
};

describe("exact decimal conversion", () => {
  test("0.1 + 0.2 is exactly 0.3", () => {
    expect(micros("0.1") + micros("0.2")).toBe(micros("0.3"));
    expect(micros("0.1") + micros("0.2")).toBe(300_000n);
  });

  test.each([
    ["0", 0n],
    ["1", 1_000_000n],
    ["2.5", 2_500_000n],
    ["0.000001", 1n],
    ["1.10", 1_100_000n],
    [".5", 500_000n],
    ["+4", 4_000_000n],
    ["12.", 12_000_000n],
    ["1e-6", 1n],
    ["2.5e-3", 2_500n],
    ["2.5e3", 2_500_000_000n],
    ["1E2", 100_000_000n],
    ["1.5000000", 1_500_000n],
    ["0.0000010", 1n],
    ["-1.5", -1_500_000n],
    ["9007199254.740991", 9_007_199_254_740_991n],
    ["123456789012345.678901", 123_456_789_012_345_678_901n],
  ])("%s → %s micros", (text, want) => {
    expect(micros(text)).toBe(want);
  });

  test.each([
    ["0.0000001", "must have at most 6 decimal places"],
    ["1e-7", "must have at most 6 decimal places"],
    ["1.2345678", "must have at most 6 decimal places"],
    ["0x1A", "must be a decimal number"],
    [".inf", "must be a decimal number"],
    [".nan", "must be a decimal number"],
    ["1_000", "must be a decimal number"],
    ["abc", "must be a decimal number"],
    ["", "must be a decimal number"],
    ["1e100", "too large"],
    ["1e-100", "too large"],
    ["1".repeat(50), "too large"],
  ])("%s is refused (%s)", (text, want) => {
    expect(error(text)).toContain(want);
  });

  test("other scales: per-1K token prices keep 9 decimals, video seconds 3", () => {
    expect(parseScaledDecimal("0.0025", 9)).toEqual({ ok: true, value: 2_500_000n });
    expect(parseScaledDecimal("0.000000001", 9)).toEqual({ ok: true, value: 1n });
    expect(error("0.0000000001", 9)).toContain("at most 9 decimal places");
    expect(parseScaledDecimal("5.25", 3)).toEqual({ ok: true, value: 5250n });
  });

  test("creditsToMicros throws on bad text", () => {
    expect(creditsToMicros("30")).toBe(30_000_000n);
    expect(() => creditsToMicros("1.0000001")).toThrow(RangeError);
  });

  test("formatting is exact and shortest", () => {
    expect(formatCredits(2_500_000n)).toBe("2.5");
    expect(formatCredits(1n)).toBe("0.000001");
    expect(formatCredits(0n)).toBe("0");
    expect(formatCredits(-1_500_000n)).toBe("-1.5");
    expect(formatCredits(205_000_000n)).toBe("205");
    expect(formatScaled(1_050_000n, 6)).toBe("1.05");
    for (const s of ["0.1", "2.5", "0.000001", "123456.654321", "9007199254.740991"]) expect(formatCredits(micros(s))).toBe(s);
  });

  test("ceilDiv rounds up, never down", () => {
    expect(ceilDiv(0n, 7n)).toBe(0n);
    expect(ceilDiv(1n, 1_000_000n)).toBe(1n);
    expect(ceilDiv(2_500_000n, 1_000_000n)).toBe(3n);
    expect(ceilDiv(3_000_000n, 1_000_000n)).toBe(3n);
  });
});
