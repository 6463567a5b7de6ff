// Exact decimal ↔ integer conversion for money. No JavaScript number ever carries a price:
// decimal text ("2.5", "0.000001", "1e-3") is parsed digit by digit into a bigint count of
// 10^-scale units (scale 6 = micro-credits), and refused when a digit would be lost.

/** 1 credit = 1,000,000 micro-credits. */
export const MICROS_PER_CREDIT = 1_000_000n;

/** The largest amount creditd accepts anywhere (README: Lua keeps numbers as doubles). */
export const MAX_SAFE_MICROS = BigInt(Number.MAX_SAFE_INTEGER);

// YAML 1.2 core-schema float syntax (plus an optional sign), e.g. "12", "2.50", ".5", "1e-3", "+4".
const DECIMAL_RE = /^([+-])?(?:(\d+)(?:\.(\d*))?|\.(\d+))(?:[eE]([+-]?\d+))?$/;
const MAX_DIGITS = 40;
const MAX_EXPONENT = 40;

export type ScaledDecimal = { readonly ok: true; readonly value: bigint } | { readonly ok: false; readonly error: string };

/**
 * Parses decimal text exactly into an integer number of 10^-scale units:
 * parseScaledDecimal("2.5", 6) → 2_500_000n. Refuses (ok: false, with a message that completes
 * "<path>: …") text that is not a plain decimal (hex, ".inf", ".nan", "1_000", words) and values with
 * non-zero digits beyond `scale` decimal places ("0.0000001", "1e-7" at scale 6). Trailing zeros are
 * fine ("1.5000000" = 1.5). Negative values parse (to a negative bigint); callers decide on sign.
 */
export function parseScaledDecimal(text: string, scale: number): ScaledDecimal {
  const m = DECIMAL_RE.exec(text.trim());
  if (!m) return { ok: false, error: `must be a decimal number, got ${JSON.stringify(text)}` };
  const negative = m[1] === "-";
  const intPart = m[2] ?? "";
  const fracPart = m[3] ?? m[4] ?? "";
  const exponent = m[5] === undefined ? 0 : Number(m[5]);
  const digits = (intPart + fracPart).replace(/^0+/, "");
  if (digits.length > MAX_DIGITS || Math.abs(exponent) > MAX_EXPONENT) {
    return { ok: false, error: `is too large or too precise: ${JSON.stringify(text)}` };
  }
  const mantissa = digits === "" ? 0n : BigInt(digits);
  // value × 10^scale = mantissa × 10^pow
  const pow = exponent - fracPart.length + scale;
  let value: bigint;
  if (pow >= 0) {
    value = mantissa * 10n ** BigInt(pow);
  } else {
    const divisor = 10n ** BigInt(-pow);
    if (mantissa % divisor !== 0n) {
      return { ok: false, error: `must have at most ${scale} decimal places, got ${JSON.stringify(text)}` };
    }
    value = mantissa / divisor;
  }
  return { ok: true, value: negative ? -value : value };
}

/** Parses credits ("2.5") into micro-credits (2_500_000n); throws RangeError on bad text. */
export function creditsToMicros(text: string): bigint {
  const r = parseScaledDecimal(text, 6);
  if (!r.ok) throw new RangeError(`credits ${r.error}`);
  return r.value;
}

/** Formats an integer count of 10^-scale units as the shortest exact decimal: (2_500_000n, 6) → "2.5". */
export function formatScaled(value: bigint, scale: number): string {
  const negative = value < 0n;
  const abs = negative ? -value : value;
  const unit = 10n ** BigInt(scale);
  const whole = abs / unit;
  const frac = (abs % unit).toString().padStart(scale, "0").replace(/0+$/, "");
  return `${negative ? "-" : ""}${whole}${frac ? `.${frac}` : ""}`;
}

/** Micro-credits as credits: 2_500_000n → "2.5", 1n → "0.000001". */
export function formatCredits(micros: bigint): string {
  return formatScaled(micros, 6);
}

/** ⌈a / b⌉ for a ≥ 0, b > 0. */
export function ceilDiv(a: bigint, b: bigint): bigint {
  return (a + b - 1n) / b;
}
