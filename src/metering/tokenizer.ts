// Token counting with OpenAI's BPE encodings, through tiktoken (OpenAI's Rust tokenizer compiled to WASM).
// The engine was chosen by measurement, see README.md in this folder and bench/tokenizers.mjs.
//
// Everything here is synchronous and CPU-bound: the Meter (meter.ts) decides whether a text is counted on the event
// loop (small texts) or on a worker thread (large ones), and this module is what both run.
//
// Text is counted as ordinary text: a string such as "<|endoftext|>" inside a prompt is counted as the characters
// it is made of, never as a special token (tiktoken's encode_ordinary), which is what the APIs bill.
import { get_encoding, type Tiktoken } from "tiktoken";

export type Encoding = "o200k_base" | "cl100k_base";
export const ENCODINGS: readonly Encoding[] = ["o200k_base", "cl100k_base"];

export function isEncoding(value: unknown): value is Encoding {
  return value === "o200k_base" || value === "cl100k_base";
}

/**
 * How to count for a model.
 * - `{ encoding }`: the model's own tokenizer (o200k_base: gpt-4o, gpt-4.1, o-series, gpt-5; cl100k_base: gpt-4,
 *   gpt-3.5, embeddings). Counts are exact.
 * - `{ encoding, estimate: true }`: a model whose tokenizer is not shipped (Claude, Llama, Gemini…), counted with a
 *   declared fallback encoding. Counts are flagged as estimated.
 * - `multiplier` (either case): counts × multiplier, rounded up to a whole token with exact integer arithmetic; a
 *   decimal string ("1.15") or a parsed Multiplier (parseMultiplier, multiplierFromMillionths). A multiplier other
 *   than 1 also flags counts as estimated.
 */
export interface TokenizerSpec {
  readonly encoding: Encoding;
  readonly estimate?: boolean;
  readonly multiplier?: string | Multiplier;
}

export interface TokenCount {
  readonly tokens: number;
  /** true when the count is not what the model's own tokenizer would say (see TokenizerSpec and MAX_RUN_BYTES). */
  readonly estimated: boolean;
  /** what counted: the encoding, with the multiplier when one applies, e.g. "o200k_base" or "cl100k_base*1.15". */
  readonly tokenizer: string;
}

// ---------------------------------------------------------------------------------------------------- encoders

const encoders = new Map<Encoding, Tiktoken>();

/** The tiktoken encoder of an encoding, loaded once per thread (o200k_base takes ~200 ms, cl100k_base ~60 ms). */
function encoder(encoding: Encoding): Tiktoken {
  let enc = encoders.get(encoding);
  if (enc === undefined) {
    if (!isEncoding(encoding)) throw new RangeError(`unknown encoding ${JSON.stringify(encoding)}`);
    enc = get_encoding(encoding);
    encoders.set(encoding, enc);
  }
  return enc;
}

/** Loads the encoders now rather than on the first count (a process calls this at startup, before serving). */
export function preloadEncodings(encodings: readonly Encoding[] = ENCODINGS): void {
  for (const e of encodings) encoder(e);
}

// ---------------------------------------------------------------------------------------------------- long runs

/**
 * BPE merging is quadratic in the length of one pre-token, in tiktoken and gpt-tokenizer alike: 64 KiB of letters
 * without a space, or of spaces, punctuation, emoji or ideographs, takes 2-5 s to count, and 1 MiB would take many
 * minutes. A pre-token is (for both encodings) at most a run of letters/marks, a run of punctuation/symbols/marks,
 * or a run of whitespace, plus a character or two. So a run longer than MAX_RUN_BYTES (UTF-8) is cut into pieces of
 * that size, each piece is counted on its own, and the count is flagged as estimated: the pieces tokenize like the
 * whole except within a few tokens of each cut. Ordinary text (words, code, CJK clauses, base64 with its digits)
 * has no such run and is counted exactly. With the cut, counting stays linear: about 1 s per MiB in the worst case.
 */
export const MAX_RUN_BYTES = 1024;

const UNKNOWN = 0;
const LETTER = 1; // \p{L}
const MARK = 2; // \p{M}: continues both a letter run and a punctuation run
const NUMBER = 3; // \p{N}: digits are pre-tokenized 1-3 at a time, never a long run
const SPACE = 4; // \s
const OTHER = 5; // punctuation, symbols, emoji, controls, lone surrogates

const RE_LETTER = /^\p{L}$/u;
const RE_MARK = /^\p{M}$/u;
const RE_NUMBER = /^\p{N}$/u;
const RE_SPACE = /^\s$/u;

let classTable: Uint8Array | undefined; // filled lazily, one byte per code point (1.1 MB per thread)

function classOf(cp: number): number {
  const table = (classTable ??= new Uint8Array(0x110000));
  let c = table[cp]!;
  if (c === UNKNOWN) {
    const ch = String.fromCodePoint(cp);
    c = RE_LETTER.test(ch) ? LETTER : RE_MARK.test(ch) ? MARK : RE_NUMBER.test(ch) ? NUMBER : RE_SPACE.test(ch) ? SPACE : OTHER;
    table[cp] = c;
  }
  return c;
}

/**
 * The text itself when it has no run longer than maxRunBytes, else the text cut inside each such run (the pieces
 * concatenate back to the text; a cut never splits a surrogate pair). Linear time.
 */
export function segmentsOf(text: string, maxRunBytes: number = MAX_RUN_BYTES): string[] {
  const n = text.length;
  if (n * 3 < maxRunBytes) return [text]; // a UTF-16 code unit is at most 3 UTF-8 bytes
  let letters = 0;
  let others = 0;
  let spaces = 0;
  let start = 0;
  let out: string[] | undefined;
  for (let i = 0; i < n; i++) {
    let cp = text.charCodeAt(i);
    let bytes: number;
    if (cp < 0x80) bytes = 1;
    else if (cp < 0x800) bytes = 2;
    else if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < n) {
      const lo = text.charCodeAt(i + 1);
      if (lo >= 0xdc00 && lo <= 0xdfff) {
        cp = ((cp - 0xd800) << 10) + (lo - 0xdc00) + 0x10000;
        i++;
        bytes = 4;
      } else bytes = 3;
    } else bytes = 3;
    switch (classOf(cp)) {
      case LETTER:
        letters += bytes;
        others = 0;
        spaces = 0;
        break;
      case MARK:
        letters += bytes;
        others += bytes;
        spaces = 0;
        break;
      case SPACE:
        spaces += bytes;
        letters = 0;
        others = 0;
        break;
      case OTHER:
        others += bytes;
        letters = 0;
        spaces = 0;
        break;
      default:
        letters = 0;
        others = 0;
        spaces = 0;
    }
    if (letters >= maxRunBytes || others >= maxRunBytes || spaces >= maxRunBytes) {
      (out ??= []).push(text.slice(start, i + 1));
      start = i + 1;
      letters = 0;
      others = 0;
      spaces = 0;
    }
  }
  if (out === undefined) return [text];
  if (start < n) out.push(text.slice(start));
  return out;
}

// ---------------------------------------------------------------------------------------------------- counting

export interface RawCount {
  readonly tokens: number;
  /** a run longer than MAX_RUN_BYTES was cut (see above): the count is within a few tokens per cut */
  readonly approximate: boolean;
}

/** Tokens of `text` in `encoding`, with whether a long run had to be cut. Synchronous, CPU-bound. */
export function countRaw(text: string, encoding: Encoding): RawCount {
  if (text.length === 0) return { tokens: 0, approximate: false };
  const enc = encoder(encoding);
  const segments = segmentsOf(text);
  if (segments.length === 1) return { tokens: enc.encode_ordinary(text).length, approximate: false };
  let tokens = 0;
  for (const s of segments) tokens += enc.encode_ordinary(s).length;
  return { tokens, approximate: true };
}

/** Number of tokens of `text` in `encoding` (synchronous: large texts belong on a worker, see Meter). */
export function countTokens(text: string, encoding: Encoding): number {
  return countRaw(text, encoding).tokens;
}

// A count and its approximate flag in one number, for the cache and for worker replies: tokens * 2 + flag.
export function packCount(c: RawCount): number {
  return c.tokens * 2 + (c.approximate ? 1 : 0);
}
export function unpackCount(packed: number): RawCount {
  return { tokens: Math.floor(packed / 2), approximate: packed % 2 === 1 };
}

// ---------------------------------------------------------------------------------------------------- estimates

export interface Multiplier {
  readonly text: string;
  readonly numerator: bigint;
  readonly denominator: bigint;
}

const MULTIPLIER_RE = /^(\d{1,6})(?:\.(\d{1,6}))?$/;

/**
 * Parses a multiplier written as a decimal string ("1", "1.15", "0.9"; at most 6 digits before and after the
 * point), exactly: no binary floating point is involved. Throws a RangeError naming the value when it is malformed
 * or not > 0, so a catalog loader can report it.
 */
export function parseMultiplier(text: string): Multiplier {
  const m = typeof text === "string" ? MULTIPLIER_RE.exec(text) : null;
  if (m === null) throw new RangeError(`multiplier must be a decimal string like "1.15", got ${JSON.stringify(text)}`);
  const frac = m[2] ?? "";
  const numerator = BigInt(m[1]! + frac);
  const denominator = 10n ** BigInt(frac.length);
  if (numerator === 0n) throw new RangeError(`multiplier must be > 0, got ${JSON.stringify(text)}`);
  return { text, numerator, denominator };
}

/** ceil(tokens × multiplier), exactly. */
export function applyMultiplier(tokens: number, m: Multiplier): number {
  const t = BigInt(tokens);
  return Number((t * m.numerator + m.denominator - 1n) / m.denominator);
}

/** A multiplier given in millionths (1.1 → 1_100_000n), as a catalog may store it. */
export function multiplierFromMillionths(millionths: bigint): Multiplier {
  if (typeof millionths !== "bigint" || millionths <= 0n) throw new RangeError("multiplier must be > 0");
  const whole = millionths / 1_000_000n;
  const frac = (millionths % 1_000_000n).toString().padStart(6, "0").replace(/0+$/, "");
  return { text: frac === "" ? `${whole}` : `${whole}.${frac}`, numerator: millionths, denominator: 1_000_000n };
}

const parsedMultipliers = new Map<string, Multiplier>();

/** The multiplier of a spec, parsed once (undefined when there is none or it is 1). Throws a RangeError if malformed. */
export function multiplierOf(spec: TokenizerSpec): Multiplier | undefined {
  const given = spec.multiplier;
  if (given === undefined) return undefined;
  let m: Multiplier;
  if (typeof given === "string") {
    const known = parsedMultipliers.get(given);
    m = known ?? parseMultiplier(given);
    if (known === undefined && parsedMultipliers.size < 1024) parsedMultipliers.set(given, m); // specs come from the catalog
  } else {
    m = given;
    if (typeof m !== "object" || typeof m.numerator !== "bigint" || typeof m.denominator !== "bigint" || m.numerator <= 0n || m.denominator <= 0n) {
      throw new RangeError("multiplier must be a decimal string or a Multiplier with positive bigint numerator and denominator");
    }
  }
  return m.numerator === m.denominator ? undefined : m;
}

/** Checks a spec (encoding known, multiplier well-formed); throws a RangeError otherwise. */
export function checkSpec(spec: TokenizerSpec): void {
  if (spec === null || typeof spec !== "object" || !isEncoding(spec.encoding)) {
    throw new RangeError(`tokenizer spec needs an encoding of ${ENCODINGS.join(" or ")}`);
  }
  multiplierOf(spec);
}

/** The name a reply shows for what counted: "o200k_base", or "cl100k_base*1.15" for an estimate with a multiplier. */
export function tokenizerLabel(spec: TokenizerSpec): string {
  const m = multiplierOf(spec);
  return m === undefined ? spec.encoding : `${spec.encoding}*${m.text}`;
}

/** Applies a spec to a raw count in the spec's encoding: the multiplier, and the estimated flag. */
export function finishCount(raw: RawCount, spec: TokenizerSpec): TokenCount {
  const m = multiplierOf(spec);
  return {
    tokens: m === undefined ? raw.tokens : applyMultiplier(raw.tokens, m),
    estimated: spec.estimate === true || m !== undefined || raw.approximate,
    tokenizer: tokenizerLabel(spec),
  };
}

/** Counts a text for a spec, synchronously (exact for a model's own encoding, estimated for a fallback). */
export function countWithSpec(text: string, spec: TokenizerSpec): TokenCount {
  checkSpec(spec);
  return finishCount(countRaw(text, spec.encoding), spec);
}
