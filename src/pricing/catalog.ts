// The pricing catalog: how usage becomes credits. One YAML file (JSON works too: YAML is a superset),
// parsed and validated into an immutable Catalog. Every price is converted exactly to integer
// micro-credits (1 credit = 1,000,000 micros) from the file's own text; no floating point touches money.
//
// ─── Format ──────────────────────────────────────────────────────────────────────────────────────
//
//   name: Landing page builder            # optional, for people
//   description: …                        # optional
//   rounding: none                        # or { up_to: 1 } (whole credits), { up_to: 0.001 }, …
//   unknown_models: refuse                # or { price_as: gpt-4o-mini }
//
//   operations:                           # what the product sells, by name (request.operation)
//     content.rewrite:
//       price: 1                          # fixed credits per request; 0 = free (still recorded as usage)
//     knowledge.sync:
//       per_unit: 25                      # credits per unit (request.units, default 1)
//       unit: sync                        # name of the unit in line items (default "unit")
//       max_units: 100                    # largest request.units accepted (default 1000000)
//     chat:
//       tokens: true                      # priced by the model's token prices (see models)
//       model: gpt-4o-mini                # model used when the request names none (optional)
//       default_output_tokens: 1024       # output caps for this operation (optional; the model's
//       max_output_tokens: 4096           #   caps apply too, the smaller wins)
//     image.generate:
//       image: true                       # priced by the top-level images table, or give a table here
//     video.generate:
//       video: { tiers: { premium: { per_second: 1 }, basic: { per_second: 0 } }, default_tier: premium }
//
//   models:                               # token prices, credits per 1M tokens (_per_1m) or per 1K (_per_1k)
//     gpt-4o:
//       input_per_1m: 2.5                 # required (exactly one of input_per_1m / input_per_1k)
//       output_per_1m: 10                 # required
//       cached_input_per_1m: 1.25         # optional, default = input price
//       reasoning_per_1m: 10              # optional, default = output price
//       aliases: [gpt-4o-2024-08-06]      # other exact names of this model
//       patterns: ["gpt-4o*"]             # prefix patterns (one trailing *), longest prefix wins
//       encoding: o200k_base              # required: o200k_base | cl100k_base (see Tokenizers below)
//       default_output_tokens: 1024       # worst case when the request gives no max_output_tokens
//       max_output_tokens: 16384          # required: a request's max_output_tokens is capped to this
//     claude-sonnet-4:
//       input_per_1m: 3
//       output_per_1m: 15
//       encoding: { fallback: cl100k_base, multiplier: 1.15 }   # no shipped tokenizer: an estimate
//       max_output_tokens: 64000
//
//   images:                               # resolution × quality × count
//     qualities: [standard, hd]           # allowed qualities (default [standard]); first is the default
//     default_quality: standard           # optional
//     max_count: 10                       # most images per request (default 10)
//     sizes:                              # exact sizes, WIDTHxHEIGHT; a price for every quality,
//       1024x1024: 30                     #   or one price for all of them
//       2048x2048: { standard: 60, hd: 90 }
//     tiers:                              # sizes not listed above: the first tier whose max_megapixels
//       - { max_megapixels: 1.1, price: 30 }  #  ≥ width×height/1e6; the last tier may omit max_megapixels
//       - { price: { standard: 60, hd: 90 } }  # (any larger size)
//
//   video:                                # seconds × per-second price of a tier (name tiers after
//     tiers:                              #   models when the price depends on the model)
//       premium: { per_second: 1 }
//       basic: { per_second: 0 }
//     default_tier: premium               # required when there is more than one tier
//     max_seconds: 60                     # longest video a request may ask for (default 600)
//
//   plans:                                # optional: what each subscription gives a workspace (plans.ts)
//     base:                               # plan id: same characters as operation names
//       name: Base                        # display name (default: the id)
//       credits: 40                       # credits per period for the workspace (default 0)
//       credits_per_seat: 150             # credits per seat per period (default 0)
//       period: month                     # how often the allowance refills: month (default) | year
//                                         #   (year: the year's credits upfront)
//       billing: year                     # how it is billed: month | year (informational; default = period)
//       legacy: true                      # kept for existing customers (default false)
//       aliases: [pro-2021]               # other ids resolving to this plan (unique across ids and aliases)
//       member_cap: 50                    # default per-member cap per period, credits (absent = no cap)
//       warn_at: [20, 5]                  # low-credit warnings, % of the period's credits left (default [20, 5])
//       trial: { credits: 50, days: 14 }  # both required; days 1-365, credits ≥ 0
//       addons:                           # recurring add-on units, by id
//         extra:
//           name: Extra credits           # default: the id
//           credits: 60                   # required, > 0: credits per unit per period
//           per_seat: true                # each unit gives credits × seats (default false: shared)
//           max_units: 1000               # most units (default 10000, at most 1000000)
//     enterprise:
//       unlimited: true                   # never refuses for credits: no credits, credits_per_seat, addons
//   A plan must be unlimited or give credits > 0 or credits_per_seat > 0. Plan amounts are at most
//   1,000,000,000 credits each and kept as `number` micros (they go to Redis Lua): a plan is refused when
//   credits + credits_per_seat × MAX_SEATS (100,000) + each add-on's credits × max_units (× MAX_SEATS when
//   per_seat) passes Number.MAX_SAFE_INTEGER micros, so no period of any plan can lose a digit.
//   Catalog.plans maps id → Plan and Catalog.planAliases alias → id (both empty without plans);
//   resolvePlan(catalog, id) looks up either. A file still has to declare something to price.
//
// Prices are credits with at most 6 decimal places (one micro-credit), written as YAML numbers or
// strings ("2.5"); exponents are allowed when no digit is lost (2.5e-3). Prices per 1K tokens may have
// 9 decimal places: that is still a whole number of micro-credits per 1M tokens, which is how token
// prices are kept. Negative prices, .inf/.nan, hex and more precision than that are refused. Numbers
// are read from the source text, never through a JavaScript float.
//
// Tokenizers: `encoding` says how the model's tokens are counted (src/metering counts them).
//   - `o200k_base` (gpt-4o, gpt-4.1, o-series, gpt-5) or `cl100k_base` (gpt-4, gpt-3.5, embeddings): the
//     model's own encoding, so counts are exact.
//   - `{ fallback: <encoding>, multiplier: <number> }` for a model whose tokenizer is not shipped (Claude,
//     Llama, Gemini, …): counts are made with the fallback encoding, multiplied (rounded up to a whole
//     token) and flagged as estimates, which replies say. The multiplier is optional (default 1), a
//     decimal > 0 and ≤ 10 with at most 6 decimal places, read exactly like the prices.
//   ModelEntry.tokenizer is { encoding, estimate, multiplier?, label } ("cl100k_base*1.15"), and
//   tokenizerSpecOf(model) is the metering module's TokenizerSpec for it.
//
// Unknown fields are errors (a typo must not silently price something at 0). Every error names the path
// of the bad entry, e.g. `models["gpt-4o"].output_per_1m: must be ≥ 0`; all errors of a file are
// collected into one CatalogError.
//
// The catalog's version is the first 16 hex digits of the SHA-256 of the file's bytes: any edit gives a
// new version, the same text always the same one.

import { createHash } from "node:crypto";
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node as YamlNode } from "yaml";
import { formatScaled, parseScaledDecimal } from "./decimal.js";
import {
  DEFAULT_ADDON_MAX_UNITS,
  MAX_ADDON_UNITS,
  MAX_PLAN_CREDITS,
  MAX_SEATS,
  MAX_TRIAL_DAYS,
  DEFAULT_WARN_AT_PERCENT,
  PLAN_ID_RE,
  planWorstCaseMicros,
  type Plan,
  type PlanAddon,
  type PlanCadence,
} from "./plans.js";

// ─── Limits ──────────────────────────────────────────────────────────────────────────────────────

/** Longest image side, in pixels, for catalog sizes and requests. */
export const MAX_IMAGE_SIDE = 16384;
/** Largest token count accepted anywhere (a request, a usage, a cap). */
export const MAX_TOKENS = 100_000_000;
/** Largest single price, in credits. */
export const MAX_PRICE_CREDITS = 1_000_000_000n;
const MAX_PRICE_MICROS = MAX_PRICE_CREDITS * 1_000_000n;
const MAX_IMAGE_COUNT = 1000;
const MAX_VIDEO_SECONDS = 86_400;
const MAX_UNITS = 1_000_000_000;

/** The encodings creditd ships (src/metering counts with them). */
export const ENCODINGS = ["o200k_base", "cl100k_base"] as const;
export type Encoding = (typeof ENCODINGS)[number];
/** Largest fallback multiplier, in millionths (10). */
const MAX_MULTIPLIER_MILLIONTHS = 10_000_000n;

// ─── Types ───────────────────────────────────────────────────────────────────────────────────────

/** Token prices in micro-credits per 1,000,000 tokens (exact: 2.5 credits/1M → 2_500_000n). */
export interface TokenPrices {
  readonly inputPer1M: bigint;
  readonly cachedInputPer1M: bigint;
  readonly outputPer1M: bigint;
  readonly reasoningPer1M: bigint;
}

/**
 * How to count a model's tokens, in the shape of the metering module's TokenizerSpec
 * (src/metering/tokenizer.ts), declared here so that pricing does not depend on metering.
 */
export interface TokenizerSpec {
  readonly encoding: Encoding;
  readonly estimate: boolean;
  readonly multiplier?: string;
}

/** A model's tokenizer as its catalog entry declares it. */
export interface ModelTokenizer extends TokenizerSpec {
  /** The model's own encoding (estimate false), or the declared fallback (estimate true). */
  readonly encoding: Encoding;
  /** True for a fallback: the model's tokenizer is not shipped, so its counts are estimates. */
  readonly estimate: boolean;
  /** Fallback only: counts × this, rounded up, as the shortest exact decimal ("1.15"); absent when 1. */
  readonly multiplier?: string;
  /** The tokenizer replies show: "o200k_base", or "cl100k_base*1.15" with a multiplier. */
  readonly label: string;
}

export interface ModelEntry {
  readonly name: string;
  readonly description: string | undefined;
  readonly prices: TokenPrices;
  readonly aliases: readonly string[];
  readonly patterns: readonly string[];
  readonly tokenizer: ModelTokenizer;
  readonly defaultOutputTokens: number;
  readonly maxOutputTokens: number;
}

export interface ImageTier {
  /** Largest width × height of this tier; undefined = any size. */
  readonly maxPixels: bigint | undefined;
  /** "≤ 1.1 MP" or "any size". */
  readonly label: string;
  /** Micros per image, by quality. */
  readonly prices: ReadonlyMap<string, bigint>;
}

export interface ImageTable {
  readonly qualities: readonly string[];
  readonly defaultQuality: string;
  /** "1024x1024" → quality → micros per image. */
  readonly sizes: ReadonlyMap<string, ReadonlyMap<string, bigint>>;
  readonly tiers: readonly ImageTier[];
  readonly maxCount: number;
}

export interface VideoTier {
  readonly name: string;
  readonly perSecondMicros: bigint;
  readonly description: string | undefined;
}

export interface VideoTable {
  readonly tiers: ReadonlyMap<string, VideoTier>;
  readonly defaultTier: string;
  readonly maxSeconds: number;
}

export interface PerUnit {
  readonly priceMicros: bigint;
  readonly unit: string;
  readonly maxUnits: number;
}

export interface Operation {
  readonly name: string;
  readonly description: string | undefined;
  /** Fixed price per request (0 for a free operation). */
  readonly priceMicros: bigint;
  readonly perUnit: PerUnit | undefined;
  /** Priced by the model's token prices. */
  readonly tokens: boolean;
  /** Model used when the request names none (as written; resolved with resolveModel). */
  readonly model: string | undefined;
  readonly defaultOutputTokens: number | undefined;
  readonly maxOutputTokens: number | undefined;
  readonly image: ImageTable | undefined;
  readonly video: VideoTable | undefined;
}

export type Rounding = { readonly kind: "none" } | { readonly kind: "up_to"; readonly stepMicros: bigint };
export type UnknownModels = { readonly kind: "refuse" } | { readonly kind: "price_as"; readonly model: string };

export interface Catalog {
  /** First 16 hex digits of the SHA-256 of the source text. */
  readonly version: string;
  readonly name: string | undefined;
  readonly description: string | undefined;
  /** Absolute path of the file it was read from, when it was read from a file. */
  readonly path: string | undefined;
  /** The YAML text exactly as loaded. */
  readonly source: string;
  readonly rounding: Rounding;
  readonly unknownModels: UnknownModels;
  readonly operations: ReadonlyMap<string, Operation>;
  readonly models: ReadonlyMap<string, ModelEntry>;
  /** alias → model name */
  readonly aliases: ReadonlyMap<string, string>;
  /** Prefix patterns, longest prefix first. */
  readonly patterns: ReadonlyArray<{ readonly prefix: string; readonly model: string }>;
  readonly images: ImageTable | undefined;
  readonly video: VideoTable | undefined;
  /** Plans by id, in file order (empty when the file has no plans); see plans.ts. */
  readonly plans: ReadonlyMap<string, Plan>;
  /** Plan alias → plan id (resolvePlan looks up both). */
  readonly planAliases: ReadonlyMap<string, string>;
}

export interface ResolvedModel {
  /** The name the request used. */
  readonly requested: string;
  /** How it was found. */
  readonly via: "name" | "alias" | "pattern" | "unknown_models";
  readonly model: ModelEntry;
}

// ─── Errors ──────────────────────────────────────────────────────────────────────────────────────

export interface CatalogProblem {
  /** Path of the bad entry, e.g. `models["gpt-4o"].output_per_1m`; "(file)" for the file as a whole. */
  readonly path: string;
  /** What is wrong, e.g. `must be ≥ 0`. */
  readonly message: string;
  /** 1-based line in the file, when known. */
  readonly line: number | undefined;
}

/** A catalog that cannot be used; `problems` lists every error found. */
export class CatalogError extends Error {
  override readonly name = "CatalogError";
  readonly problems: readonly CatalogProblem[];
  readonly file: string | undefined;

  constructor(problems: readonly CatalogProblem[], file?: string) {
    const lines = problems.map((p) => `${p.path}: ${p.message}${p.line !== undefined ? ` (line ${p.line})` : ""}`);
    const head = `invalid catalog${file ? ` ${file}` : ""}`;
    super(lines.length === 1 ? `${head}: ${lines[0]}` : `${head}:\n${lines.map((l) => `  ${l}`).join("\n")}`);
    this.problems = problems;
    this.file = file;
  }
}

// ─── Model lookup ────────────────────────────────────────────────────────────────────────────────

/**
 * Finds the model a request names: exact name, then alias, then the longest matching prefix pattern,
 * then the unknown_models policy. Undefined when the catalog refuses the name. Names are case-sensitive.
 */
export function resolveModel(
  catalog: Pick<Catalog, "models" | "aliases" | "patterns" | "unknownModels">,
  name: string,
): ResolvedModel | undefined {
  const exact = catalog.models.get(name);
  if (exact) return { requested: name, via: "name", model: exact };
  const aliased = catalog.aliases.get(name);
  if (aliased !== undefined) return { requested: name, via: "alias", model: catalog.models.get(aliased)! };
  for (const p of catalog.patterns) {
    if (name.startsWith(p.prefix)) return { requested: name, via: "pattern", model: catalog.models.get(p.model)! };
  }
  if (catalog.unknownModels.kind === "price_as") {
    const target = catalog.models.get(catalog.unknownModels.model)!;
    return { requested: name, via: "unknown_models", model: target };
  }
  return undefined;
}

/** The spec to count a model's tokens with (the metering module's TokenizerSpec, for the Meter). */
export function tokenizerSpecOf(model: Pick<ModelEntry, "tokenizer">): TokenizerSpec {
  const { encoding, estimate, multiplier } = model.tokenizer;
  return multiplier === undefined ? { encoding, estimate } : { encoding, estimate, multiplier };
}

// ─── Parsing ─────────────────────────────────────────────────────────────────────────────────────

/** Version of a catalog text: the first 16 hex digits of its SHA-256. */
export function catalogVersion(source: string): string {
  return createHash("sha256").update(source, "utf8").digest("hex").slice(0, 16);
}

/**
 * Parses and validates catalog YAML. Throws a CatalogError listing every problem.
 * `file` is only used in messages and stored as Catalog.path.
 */
export function parseCatalog(source: string, opts: { file?: string } = {}): Catalog {
  const c = new Checker();
  const lineCounter = new LineCounter();
  const doc = parseDocument(source, { keepSourceTokens: true, lineCounter, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    for (const e of doc.errors) {
      const line = e.linePos?.[0]?.line;
      c.add(FILE, `YAML syntax: ${e.message.split("\n")[0]}`, line);
    }
    throw new CatalogError(c.problems, opts.file);
  }
  if (doc.contents === null) {
    c.add(FILE, "is empty");
    throw new CatalogError(c.problems, opts.file);
  }
  const root = toRaw(doc, doc.contents, source, lineCounter, c, FILE);
  const catalog = root ? buildCatalog(root, source, opts.file, c) : undefined;
  if (c.problems.length > 0 || !catalog) throw new CatalogError(c.problems, opts.file);
  return catalog;
}

const FILE = "(file)";

type Raw =
  | { readonly kind: "map"; readonly entries: ReadonlyMap<string, Raw>; readonly line: number }
  | { readonly kind: "seq"; readonly items: readonly Raw[]; readonly line: number }
  | {
      readonly kind: "scalar";
      /** The parsed value (string, number, boolean, null, …). */
      readonly value: unknown;
      /** The scalar's source text (plain scalars) or its string value (quoted and block scalars). */
      readonly text: string;
      readonly line: number;
    };

class Checker {
  readonly problems: CatalogProblem[] = [];
  add(path: string, message: string, at?: Raw | number): void {
    const line = typeof at === "number" ? at : at?.line;
    this.problems.push({ path, message, line });
  }
}

function toRaw(doc: Document, node: unknown, source: string, lc: LineCounter, c: Checker, path: string, depth = 0): Raw | undefined {
  if (depth > 64) {
    c.add(path, "is nested too deeply");
    return undefined;
  }
  if (isAlias(node)) return toRaw(doc, node.resolve(doc), source, lc, c, path, depth + 1);
  const lineOf = (n: YamlNode): number => (n.range ? lc.linePos(n.range[0]).line : 0);
  if (isMap(node)) {
    const entries = new Map<string, Raw>();
    for (const pair of node.items) {
      const keyNode = pair.key;
      let key: string;
      if (isScalar(keyNode)) {
        key = typeof keyNode.value === "string" ? keyNode.value : scalarText(keyNode, source);
      } else {
        c.add(path, "keys must be plain names", isAlias(keyNode) || !keyNode ? undefined : lineOf(keyNode as YamlNode));
        continue;
      }
      const child = pair.value === null ? nullRaw(isScalar(keyNode) ? lineOf(keyNode) : 0) : toRaw(doc, pair.value, source, lc, c, join(path, key), depth + 1);
      if (child) entries.set(key, child);
    }
    return { kind: "map", entries, line: lineOf(node) };
  }
  if (isSeq(node)) {
    const items: Raw[] = [];
    node.items.forEach((item, i) => {
      const child = item === null ? nullRaw(lineOf(node)) : toRaw(doc, item, source, lc, c, `${path}[${i}]`, depth + 1);
      if (child) items.push(child);
    });
    return { kind: "seq", items, line: lineOf(node) };
  }
  if (isScalar(node)) {
    const text = typeof node.value === "string" ? node.value : scalarText(node, source);
    return { kind: "scalar", value: node.value, text, line: lineOf(node) };
  }
  c.add(path, "unsupported YAML node");
  return undefined;
}

function nullRaw(line: number): Raw {
  return { kind: "scalar", value: null, text: "", line };
}

function scalarText(node: { srcToken?: unknown; range?: [number, number, number] | null | undefined; value: unknown }, source: string): string {
  const tok = node.srcToken as { source?: unknown } | undefined;
  if (tok && typeof tok.source === "string") return tok.source;
  if (node.range) return source.slice(node.range[0], node.range[1]);
  return String(node.value);
}

// ─── Paths ───────────────────────────────────────────────────────────────────────────────────────

/** A child path: a fixed field (`a.b`) or, under the top-level (FILE), just the field. */
function join(path: string, name: string): string {
  return path === FILE ? name : `${path}.${name}`;
}
/** An entry named by the catalog's author: `models["gpt-4o"]`. */
function entry(path: string, key: string): string {
  return `${path}[${JSON.stringify(key)}]`;
}

// ─── Readers ─────────────────────────────────────────────────────────────────────────────────────

function fields(c: Checker, node: Raw, path: string, allowed: readonly string[]): ReadonlyMap<string, Raw> | undefined {
  if (node.kind !== "map") {
    c.add(path, "must be a mapping", node);
    return undefined;
  }
  for (const [k, v] of node.entries) {
    if (!allowed.includes(k)) c.add(join(path, k), `unknown field (expected one of: ${allowed.join(", ")})`, v);
  }
  return node.entries;
}

function isNull(node: Raw): boolean {
  return node.kind === "scalar" && node.value === null;
}

interface DecimalOpts {
  /** Decimal places kept (6 = micros). */
  readonly scale?: number;
  readonly positive?: boolean;
  /** Inclusive maximum, in units of the scale. */
  readonly max?: bigint;
  readonly what?: string;
}

/** A decimal (credits by default) as an integer count of 10^-scale units. */
function decimal(c: Checker, node: Raw, path: string, opts: DecimalOpts = {}): bigint | undefined {
  const scale = opts.scale ?? 6;
  const what = opts.what ?? "a number of credits";
  if (node.kind !== "scalar" || node.value === null || typeof node.value === "boolean") {
    c.add(path, `must be ${what}`, node);
    return undefined;
  }
  if (typeof node.value === "number" && !Number.isFinite(node.value)) {
    c.add(path, `must be a finite decimal number, got ${node.text}`, node);
    return undefined;
  }
  if (typeof node.value !== "number" && typeof node.value !== "bigint" && typeof node.value !== "string") {
    c.add(path, `must be ${what}`, node);
    return undefined;
  }
  const r = parseScaledDecimal(node.text, scale);
  if (!r.ok) {
    c.add(path, r.error, node);
    return undefined;
  }
  if (opts.positive && r.value <= 0n) {
    c.add(path, "must be > 0", node);
    return undefined;
  }
  if (r.value < 0n) {
    c.add(path, "must be ≥ 0", node);
    return undefined;
  }
  if (opts.max !== undefined && r.value > opts.max) {
    c.add(path, `must be ≤ ${formatScaled(opts.max, scale)}`, node);
    return undefined;
  }
  return r.value;
}

function credits(c: Checker, node: Raw, path: string, opts: { positive?: boolean } = {}): bigint | undefined {
  return decimal(c, node, path, { scale: 6, max: MAX_PRICE_MICROS, positive: opts.positive });
}

function integer(c: Checker, node: Raw, path: string, min: number, max: number): number | undefined {
  const ok =
    node.kind === "scalar" &&
    (typeof node.value === "number" || typeof node.value === "string" || typeof node.value === "bigint") &&
    /^\+?\d+$/.test(node.text.trim());
  const n = ok ? Number(node.text.trim()) : NaN;
  if (!ok || !Number.isSafeInteger(n) || n < min || n > max) {
    c.add(path, `must be an integer between ${min} and ${max}`, node);
    return undefined;
  }
  return n;
}

function str(c: Checker, node: Raw, path: string): string | undefined {
  if (node.kind !== "scalar" || typeof node.value !== "string" || node.value.trim() === "") {
    c.add(path, "must be a non-empty string", node);
    return undefined;
  }
  return node.value;
}

function bool(c: Checker, node: Raw, path: string): boolean | undefined {
  if (node.kind !== "scalar" || typeof node.value !== "boolean") {
    c.add(path, "must be true or false", node);
    return undefined;
  }
  return node.value;
}

function strList(c: Checker, node: Raw, path: string): string[] {
  if (node.kind !== "seq") {
    c.add(path, "must be a list of strings", node);
    return [];
  }
  const out: string[] = [];
  node.items.forEach((item, i) => {
    const s = str(c, item, `${path}[${i}]`);
    if (s !== undefined) out.push(s);
  });
  return out;
}

function mapEntries(c: Checker, node: Raw, path: string): ReadonlyMap<string, Raw> {
  if (node.kind !== "map") {
    c.add(path, "must be a mapping", node);
    return new Map();
  }
  return node.entries;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$/;
const MODEL_NAME_RE = /^[^\s*]{1,200}$/;

// ─── Sections ────────────────────────────────────────────────────────────────────────────────────

const TOP_FIELDS = ["name", "description", "rounding", "unknown_models", "operations", "models", "images", "video", "plans"] as const;

function buildCatalog(root: Raw, source: string, file: string | undefined, c: Checker): Catalog | undefined {
  const top = fields(c, root, FILE, TOP_FIELDS);
  if (!top) return undefined;
  const get = (k: string): Raw | undefined => {
    const v = top.get(k);
    return v === undefined || isNull(v) ? undefined : v;
  };

  const name = get("name") ? str(c, get("name")!, "name") : undefined;
  const description = get("description") ? str(c, get("description")!, "description") : undefined;
  const rounding = get("rounding") ? parseRounding(c, get("rounding")!) : ({ kind: "none" } as const);

  // models (and the lookup tables built from them)
  const models = new Map<string, ModelEntry>();
  const modelsNode = get("models");
  if (modelsNode) {
    for (const [key, node] of mapEntries(c, modelsNode, "models")) {
      const path = entry("models", key);
      if (!MODEL_NAME_RE.test(key)) {
        c.add(path, "a model name is 1-200 characters without spaces or * (use patterns for prefixes)", node);
        continue;
      }
      const m = parseModel(c, key, node, path);
      if (m) models.set(key, m);
    }
  }
  const aliases = new Map<string, string>();
  const patterns: Array<{ prefix: string; model: string }> = [];
  for (const m of models.values()) {
    m.aliases.forEach((a, i) => {
      const path = `${entry("models", m.name)}.aliases[${i}]`;
      if (models.has(a)) c.add(path, `"${a}" is already a model name`);
      else if (aliases.has(a)) c.add(path, `"${a}" is already an alias of ${aliases.get(a)}`);
      else aliases.set(a, m.name);
    });
    m.patterns.forEach((p, i) => {
      const path = `${entry("models", m.name)}.patterns[${i}]`;
      const prefix = p.slice(0, -1);
      const other = patterns.find((q) => q.prefix === prefix);
      if (other) c.add(path, `"${p}" is already a pattern of ${other.model}`);
      else patterns.push({ prefix, model: m.name });
    });
  }
  patterns.sort((a, b) => b.prefix.length - a.prefix.length || (a.prefix < b.prefix ? -1 : 1));

  let unknownModels: UnknownModels = { kind: "refuse" };
  const unknownNode = get("unknown_models");
  if (unknownNode) {
    if (unknownNode.kind === "scalar" && unknownNode.value === "refuse") {
      unknownModels = { kind: "refuse" };
    } else if (unknownNode.kind === "map") {
      const f = fields(c, unknownNode, "unknown_models", ["price_as"]);
      const target = f?.get("price_as");
      if (!target) {
        c.add("unknown_models.price_as", "required (the model to price unknown models as)", unknownNode);
      } else {
        const t = str(c, target, "unknown_models.price_as");
        if (t !== undefined) {
          const found = models.get(t) ?? models.get(aliases.get(t) ?? "");
          if (!found) c.add("unknown_models.price_as", `unknown model "${t}" (must be a model of this catalog)`, target);
          else unknownModels = { kind: "price_as", model: found.name };
        }
      }
    } else {
      c.add("unknown_models", 'must be "refuse" or { price_as: <model> }', unknownNode);
    }
  }
  const lookup = { models, aliases, patterns, unknownModels: { kind: "refuse" } as UnknownModels };

  const imagesNode = get("images");
  const images = imagesNode ? parseImages(c, imagesNode, "images") : undefined;
  const videoNode = get("video");
  const video = videoNode ? parseVideo(c, videoNode, "video") : undefined;

  const operations = new Map<string, Operation>();
  const opsNode = get("operations");
  if (opsNode) {
    for (const [key, node] of mapEntries(c, opsNode, "operations")) {
      const path = entry("operations", key);
      if (!NAME_RE.test(key)) {
        c.add(path, "an operation name is 1-128 characters of A-Z a-z 0-9 . _ : / @ + - (starting with a letter or digit)", node);
        continue;
      }
      const op = parseOperation(c, key, node, path, { lookup, images, video, imagesNode, videoNode });
      if (op) operations.set(key, op);
    }
  }

  if (!opsNode && !modelsNode && !imagesNode && !videoNode) {
    c.add(FILE, "declares nothing to price: give operations, models, images or video", root);
  }

  const plansNode = get("plans");
  const { plans, planAliases } = plansNode ? parsePlans(c, plansNode) : { plans: new Map<string, Plan>(), planAliases: new Map<string, string>() };

  return {
    version: catalogVersion(source),
    name,
    description,
    path: file,
    source,
    rounding,
    unknownModels,
    operations,
    models,
    aliases,
    patterns,
    images,
    video,
    plans,
    planAliases,
  };
}

function parseRounding(c: Checker, node: Raw): Rounding {
  if (node.kind === "scalar" && node.value === "none") return { kind: "none" };
  if (node.kind === "map") {
    const f = fields(c, node, "rounding", ["up_to"]);
    const step = f?.get("up_to");
    if (!step) {
      c.add("rounding.up_to", "required (credits to round the total up to, e.g. 1 or 0.001)", node);
      return { kind: "none" };
    }
    const micros = credits(c, step, "rounding.up_to", { positive: true });
    return micros === undefined ? { kind: "none" } : { kind: "up_to", stepMicros: micros };
  }
  c.add("rounding", 'must be "none" or { up_to: <credits> } (e.g. { up_to: 1 } for whole credits)', node);
  return { kind: "none" };
}

const PRICE_KINDS = ["input", "output", "cached_input", "reasoning"] as const;
const MODEL_FIELDS = [
  "description",
  ...PRICE_KINDS.flatMap((k) => [`${k}_per_1m`, `${k}_per_1k`]),
  "aliases",
  "patterns",
  "encoding",
  "default_output_tokens",
  "max_output_tokens",
];

function parseModel(c: Checker, name: string, node: Raw, path: string): ModelEntry | undefined {
  const f = fields(c, node, path, MODEL_FIELDS);
  if (!f) return undefined;
  const before = c.problems.length;

  const price = (kind: (typeof PRICE_KINDS)[number]): bigint | undefined => {
    const per1m = f.get(`${kind}_per_1m`);
    const per1k = f.get(`${kind}_per_1k`);
    if (per1m && per1k) {
      c.add(join(path, `${kind}_per_1m`), `give either ${kind}_per_1m or ${kind}_per_1k, not both`, per1m);
      return undefined;
    }
    // Micros per 1M tokens: credits per 1M at scale 6, or credits per 1K at scale 9 (× 1e6 × 1000).
    if (per1m) return decimal(c, per1m, join(path, `${kind}_per_1m`), { scale: 6, max: MAX_PRICE_MICROS });
    if (per1k) return decimal(c, per1k, join(path, `${kind}_per_1k`), { scale: 9, max: MAX_PRICE_MICROS * 1000n });
    return undefined;
  };
  const input = price("input");
  const output = price("output");
  const cached = price("cached_input");
  const reasoning = price("reasoning");
  if (!f.has("input_per_1m") && !f.has("input_per_1k")) c.add(join(path, "input_per_1m"), "required (or input_per_1k)", node);
  if (!f.has("output_per_1m") && !f.has("output_per_1k")) c.add(join(path, "output_per_1m"), "required (or output_per_1k)", node);

  const aliases = f.get("aliases") ? strList(c, f.get("aliases")!, join(path, "aliases")) : [];
  aliases.forEach((a, i) => {
    if (!MODEL_NAME_RE.test(a)) c.add(`${join(path, "aliases")}[${i}]`, "an alias is 1-200 characters without spaces or *");
  });
  const patterns = f.get("patterns") ? strList(c, f.get("patterns")!, join(path, "patterns")) : [];
  patterns.forEach((p, i) => {
    if (!/^[^\s*]{1,200}\*$/.test(p)) c.add(`${join(path, "patterns")}[${i}]`, `must be a prefix followed by one *, like "gpt-4o*", got ${JSON.stringify(p)}`);
  });

  const tokenizer = parseTokenizer(c, f.get("encoding"), node, join(path, "encoding"));

  const maxNode = f.get("max_output_tokens");
  const maxOut = maxNode ? integer(c, maxNode, join(path, "max_output_tokens"), 0, MAX_TOKENS) : undefined;
  if (!maxNode) c.add(join(path, "max_output_tokens"), "required (every hold must be bounded)", node);
  const defNode = f.get("default_output_tokens");
  const defOut = defNode ? integer(c, defNode, join(path, "default_output_tokens"), 0, MAX_TOKENS) : maxOut;
  if (defNode && defOut !== undefined && maxOut !== undefined && defOut > maxOut) {
    c.add(join(path, "default_output_tokens"), `must be ≤ max_output_tokens (${maxOut})`, defNode);
  }
  const description = f.get("description") ? str(c, f.get("description")!, join(path, "description")) : undefined;

  if (c.problems.length > before || input === undefined || output === undefined || tokenizer === undefined) return undefined;
  if (maxOut === undefined || defOut === undefined) return undefined;
  return {
    name,
    description,
    prices: {
      inputPer1M: input,
      outputPer1M: output,
      cachedInputPer1M: cached ?? input,
      reasoningPer1M: reasoning ?? output,
    },
    aliases,
    patterns,
    tokenizer,
    defaultOutputTokens: defOut,
    maxOutputTokens: maxOut,
  };
}

const ENCODING_FORMS = `${ENCODINGS.join(" or ")}, or { fallback: <encoding>, multiplier: <number> } for a model whose tokenizer is not shipped`;

/** A model's `encoding`: its own encoding (exact counts), or { fallback, multiplier } (estimates). */
function parseTokenizer(c: Checker, node: Raw | undefined, model: Raw, path: string): ModelTokenizer | undefined {
  if (!node) {
    c.add(path, `required: ${ENCODING_FORMS}`, model);
    return undefined;
  }
  if (node.kind === "scalar" && typeof node.value === "string") {
    const encoding = encodingOf(c, node, path, ENCODING_FORMS);
    return encoding === undefined ? undefined : { encoding, estimate: false, label: encoding };
  }
  const f = node.kind === "map" ? fields(c, node, path, ["fallback", "multiplier"]) : undefined;
  if (!f) {
    c.add(path, `must be ${ENCODING_FORMS}`, node);
    return undefined;
  }
  const fallbackNode = f.get("fallback");
  if (!fallbackNode) c.add(join(path, "fallback"), `required (the shipped encoding to estimate with: ${ENCODINGS.join(" or ")})`, node);
  const encoding = fallbackNode ? encodingOf(c, fallbackNode, join(path, "fallback"), `one of ${ENCODINGS.join(", ")}`) : undefined;
  const multNode = f.get("multiplier");
  const millionths = multNode
    ? decimal(c, multNode, join(path, "multiplier"), { positive: true, max: MAX_MULTIPLIER_MILLIONTHS, what: "a decimal number like 1.15" })
    : 1_000_000n;
  if (encoding === undefined || millionths === undefined) return undefined;
  if (millionths === 1_000_000n) return { encoding, estimate: true, label: encoding };
  const multiplier = formatScaled(millionths, 6);
  return { encoding, estimate: true, multiplier, label: `${encoding}*${multiplier}` };
}

function encodingOf(c: Checker, node: Raw, path: string, expected: string): Encoding | undefined {
  const e = str(c, node, path);
  if (e === undefined) return undefined;
  if ((ENCODINGS as readonly string[]).includes(e)) return e as Encoding;
  c.add(path, `unknown encoding "${e}" (${expected})`, node);
  return undefined;
}

const SIZE_RE = /^(\d{1,6})x(\d{1,6})$/;

function parseImages(c: Checker, node: Raw, path: string): ImageTable | undefined {
  const f = fields(c, node, path, ["qualities", "default_quality", "sizes", "tiers", "max_count"]);
  if (!f) return undefined;
  const before = c.problems.length;

  let qualities = ["standard"];
  if (f.get("qualities")) {
    const list = strList(c, f.get("qualities")!, join(path, "qualities"));
    const seen = new Set<string>();
    list.forEach((q, i) => {
      if (seen.has(q)) c.add(`${join(path, "qualities")}[${i}]`, `"${q}" is listed twice`);
      seen.add(q);
    });
    if (list.length === 0) c.add(join(path, "qualities"), "must list at least one quality", f.get("qualities"));
    else qualities = [...seen];
  }
  let defaultQuality = qualities[0]!;
  const dq = f.get("default_quality");
  if (dq) {
    const q = str(c, dq, join(path, "default_quality"));
    if (q !== undefined && !qualities.includes(q)) c.add(join(path, "default_quality"), `unknown quality "${q}" (qualities: ${qualities.join(", ")})`, dq);
    else if (q !== undefined) defaultQuality = q;
  }

  const qualityPrices = (n: Raw, p: string): Map<string, bigint> | undefined => {
    const out = new Map<string, bigint>();
    if (n.kind === "map") {
      for (const [q, v] of n.entries) {
        if (!qualities.includes(q)) {
          c.add(entry(p, q), `unknown quality (qualities: ${qualities.join(", ")})`, v);
          continue;
        }
        const micros = credits(c, v, entry(p, q));
        if (micros !== undefined) out.set(q, micros);
      }
      const missing = qualities.filter((q) => !n.entries.has(q));
      if (missing.length > 0) c.add(p, `missing a price for quality ${missing.map((q) => `"${q}"`).join(", ")}`, n);
      return out.size === qualities.length ? out : undefined;
    }
    const micros = credits(c, n, p);
    if (micros === undefined) return undefined;
    for (const q of qualities) out.set(q, micros);
    return out;
  };

  const sizes = new Map<string, ReadonlyMap<string, bigint>>();
  if (f.get("sizes")) {
    for (const [key, v] of mapEntries(c, f.get("sizes")!, join(path, "sizes"))) {
      const p = entry(join(path, "sizes"), key);
      const m = SIZE_RE.exec(key);
      const w = m ? Number(m[1]) : 0;
      const h = m ? Number(m[2]) : 0;
      if (!m || w < 1 || h < 1 || w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE) {
        c.add(p, `must be WIDTHxHEIGHT with sides between 1 and ${MAX_IMAGE_SIDE}, like 1024x1024`, v);
        continue;
      }
      const prices = qualityPrices(v, p);
      if (prices) sizes.set(`${w}x${h}`, prices);
    }
  }

  const tiers: ImageTier[] = [];
  if (f.get("tiers")) {
    const tn = f.get("tiers")!;
    if (tn.kind !== "seq") c.add(join(path, "tiers"), "must be a list of { max_megapixels, price }", tn);
    else {
      let last: bigint | undefined = 0n;
      tn.items.forEach((item, i) => {
        const p = `${join(path, "tiers")}[${i}]`;
        const tf = fields(c, item, p, ["max_megapixels", "price"]);
        if (!tf) return;
        let maxPixels: bigint | undefined;
        const mp = tf.get("max_megapixels");
        if (mp) {
          // megapixels with 6 decimals × 1e6 = pixels, exactly
          maxPixels = decimal(c, mp, join(p, "max_megapixels"), { positive: true, max: BigInt(MAX_IMAGE_SIDE) ** 2n, what: "a number of megapixels" });
          if (maxPixels !== undefined) {
            if (last === undefined) c.add(join(p, "max_megapixels"), "no tier may follow a tier without max_megapixels", mp);
            else if (maxPixels <= last) c.add(join(p, "max_megapixels"), "must be larger than the previous tier's", mp);
          }
        } else if (i < tn.items.length - 1) {
          c.add(join(p, "max_megapixels"), "required (only the last tier may omit it, to cover any size)", item);
        }
        const pn = tf.get("price");
        if (!pn) c.add(join(p, "price"), "required", item);
        const prices = pn ? qualityPrices(pn, join(p, "price")) : undefined;
        last = mp ? maxPixels ?? last : undefined;
        if (prices && (maxPixels !== undefined || !mp)) {
          tiers.push({ maxPixels, label: maxPixels === undefined ? "any size" : `≤ ${formatScaled(maxPixels, 6)} MP`, prices });
        }
      });
    }
  }
  if (!f.get("sizes") && !f.get("tiers")) c.add(path, "must declare sizes or tiers (or both)", node);

  const maxCount = f.get("max_count") ? integer(c, f.get("max_count")!, join(path, "max_count"), 1, MAX_IMAGE_COUNT) : 10;
  if (c.problems.length > before || maxCount === undefined) return undefined;
  return { qualities, defaultQuality, sizes, tiers, maxCount };
}

function parseVideo(c: Checker, node: Raw, path: string): VideoTable | undefined {
  const f = fields(c, node, path, ["tiers", "default_tier", "max_seconds"]);
  if (!f) return undefined;
  const before = c.problems.length;
  const tiers = new Map<string, VideoTier>();
  const tn = f.get("tiers");
  if (!tn) c.add(join(path, "tiers"), "required (e.g. { premium: { per_second: 1 }, basic: { per_second: 0 } })", node);
  else {
    for (const [name, v] of mapEntries(c, tn, join(path, "tiers"))) {
      const p = entry(join(path, "tiers"), name);
      if (!NAME_RE.test(name)) {
        c.add(p, "a tier name is 1-128 characters of A-Z a-z 0-9 . _ : / @ + -", v);
        continue;
      }
      const tf = fields(c, v, p, ["per_second", "description"]);
      if (!tf) continue;
      const ps = tf.get("per_second");
      if (!ps) {
        c.add(join(p, "per_second"), "required (credits per second; 0 for a free tier)", v);
        continue;
      }
      const micros = credits(c, ps, join(p, "per_second"));
      const description = tf.get("description") ? str(c, tf.get("description")!, join(p, "description")) : undefined;
      if (micros !== undefined) tiers.set(name, { name, perSecondMicros: micros, description });
    }
    if (tn.kind === "map" && tn.entries.size === 0) c.add(join(path, "tiers"), "must declare at least one tier", tn);
  }
  let defaultTier: string | undefined;
  const dt = f.get("default_tier");
  if (dt) {
    const t = str(c, dt, join(path, "default_tier"));
    if (t !== undefined && tn?.kind === "map" && !tn.entries.has(t)) {
      c.add(join(path, "default_tier"), `unknown tier "${t}" (tiers: ${[...tn.entries.keys()].join(", ")})`, dt);
    } else defaultTier = t;
  } else if (tn?.kind === "map" && tn.entries.size > 1) {
    c.add(join(path, "default_tier"), "required when there is more than one tier", node);
  } else if (tn?.kind === "map") {
    defaultTier = [...tn.entries.keys()][0];
  }
  const maxSeconds = f.get("max_seconds") ? integer(c, f.get("max_seconds")!, join(path, "max_seconds"), 1, MAX_VIDEO_SECONDS) : 600;
  if (c.problems.length > before || defaultTier === undefined || maxSeconds === undefined) return undefined;
  return { tiers, defaultTier, maxSeconds };
}

const OPERATION_FIELDS = [
  "description",
  "price",
  "per_unit",
  "unit",
  "max_units",
  "tokens",
  "model",
  "default_output_tokens",
  "max_output_tokens",
  "image",
  "video",
];

interface OpContext {
  readonly lookup: Pick<Catalog, "models" | "aliases" | "patterns" | "unknownModels">;
  readonly images: ImageTable | undefined;
  readonly video: VideoTable | undefined;
  readonly imagesNode: Raw | undefined;
  readonly videoNode: Raw | undefined;
}

function parseOperation(c: Checker, name: string, node: Raw, path: string, ctx: OpContext): Operation | undefined {
  const f = fields(c, node, path, OPERATION_FIELDS);
  if (!f) return undefined;
  const before = c.problems.length;
  const get = (k: string): Raw | undefined => f.get(k);

  const priceMicros = get("price") ? credits(c, get("price")!, join(path, "price")) : 0n;
  let perUnit: PerUnit | undefined;
  if (get("per_unit")) {
    const micros = credits(c, get("per_unit")!, join(path, "per_unit"));
    const unit = get("unit") ? str(c, get("unit")!, join(path, "unit")) : "unit";
    const maxUnits = get("max_units") ? integer(c, get("max_units")!, join(path, "max_units"), 1, MAX_UNITS) : 1_000_000;
    if (micros !== undefined && unit !== undefined && maxUnits !== undefined) perUnit = { priceMicros: micros, unit, maxUnits };
  } else {
    for (const k of ["unit", "max_units"]) if (get(k)) c.add(join(path, k), "only applies with per_unit", get(k));
  }

  const tokens = get("tokens") ? bool(c, get("tokens")!, join(path, "tokens")) ?? false : false;
  if (tokens && ctx.lookup.models.size === 0) c.add(join(path, "tokens"), "needs token prices: the catalog declares no models", get("tokens"));
  let model: string | undefined;
  if (get("model")) {
    model = str(c, get("model")!, join(path, "model"));
    if (model !== undefined) {
      if (!tokens) c.add(join(path, "model"), "only applies with tokens: true", get("model"));
      else if (!resolveModel(ctx.lookup, model)) c.add(join(path, "model"), `unknown model "${model}" (must match a model of this catalog)`, get("model"));
    }
  }
  let maxOut: number | undefined;
  let defOut: number | undefined;
  for (const k of ["default_output_tokens", "max_output_tokens"] as const) {
    const n = get(k);
    if (!n) continue;
    if (!tokens) {
      c.add(join(path, k), "only applies with tokens: true", n);
      continue;
    }
    const v = integer(c, n, join(path, k), 0, MAX_TOKENS);
    if (k === "max_output_tokens") maxOut = v;
    else defOut = v;
  }
  if (maxOut !== undefined && defOut !== undefined && defOut > maxOut) {
    c.add(join(path, "default_output_tokens"), `must be ≤ max_output_tokens (${maxOut})`, get("default_output_tokens"));
  }

  const table = <T>(key: "image" | "video", top: T | undefined, topNode: Raw | undefined, parse: (c: Checker, n: Raw, p: string) => T | undefined): T | undefined => {
    const n = get(key);
    if (!n) return undefined;
    if (n.kind === "scalar" && typeof n.value === "boolean") {
      if (!n.value) return undefined;
      if (!topNode) c.add(join(path, key), `true needs a top-level ${key === "image" ? "images" : "video"} section (or give the table here)`, n);
      return top;
    }
    if (n.kind !== "map") {
      c.add(join(path, key), `must be true or ${key === "image" ? "an image" : "a video"} price table`, n);
      return undefined;
    }
    return parse(c, n, join(path, key));
  };
  const image = table("image", ctx.images, ctx.imagesNode, parseImages);
  const video = table("video", ctx.video, ctx.videoNode, parseVideo);

  if (!get("price") && !get("per_unit") && !tokens && !get("image") && !get("video")) {
    c.add(path, "must declare price, per_unit, tokens, image or video (price: 0 for a free operation)", node);
  }
  const description = get("description") ? str(c, get("description")!, join(path, "description")) : undefined;

  if (c.problems.length > before || priceMicros === undefined) return undefined;
  return {
    name,
    description,
    priceMicros,
    perUnit,
    tokens,
    model,
    defaultOutputTokens: defOut,
    maxOutputTokens: maxOut,
    image,
    video,
  };
}

// ─── Plans ───────────────────────────────────────────────────────────────────────────────────────

const PLAN_FIELDS = ["name", "credits", "credits_per_seat", "unlimited", "period", "billing", "legacy", "aliases", "member_cap", "trial", "addons", "warn_at"];
const ADDON_FIELDS = ["name", "credits", "per_seat", "max_units"];
const MAX_PLAN_MICROS = BigInt(MAX_PLAN_CREDITS) * 1_000_000n;
const SAFE_MICROS = BigInt(Number.MAX_SAFE_INTEGER);
const PLAN_ID_RULE = "1-128 characters of A-Z a-z 0-9 . _ : / @ + - (starting with a letter or digit)";

/** Plan credits (≤ MAX_PLAN_CREDITS, so always a safe integer of micros) as a number of micros. */
function planCredits(c: Checker, node: Raw, path: string, opts: { positive?: boolean } = {}): number | undefined {
  const v = decimal(c, node, path, { scale: 6, max: MAX_PLAN_MICROS, positive: opts.positive });
  return v === undefined ? undefined : Number(v);
}

function cadence(c: Checker, node: Raw, path: string): PlanCadence | undefined {
  if (node.kind === "scalar" && (node.value === "month" || node.value === "year")) return node.value;
  c.add(path, 'must be "month" or "year"', node);
  return undefined;
}

function parsePlans(c: Checker, node: Raw): { plans: Map<string, Plan>; planAliases: Map<string, string> } {
  const plans = new Map<string, Plan>();
  const planAliases = new Map<string, string>();
  const entries = mapEntries(c, node, "plans");
  for (const [id, n] of entries) {
    const path = entry("plans", id);
    if (!PLAN_ID_RE.test(id)) {
      c.add(path, `a plan id is ${PLAN_ID_RULE}`, n);
      continue;
    }
    const plan = parsePlan(c, id, n, path);
    if (plan) plans.set(id, plan);
  }
  // Aliases are unique across every plan id (valid or not) and every alias.
  for (const plan of plans.values()) {
    const planNode = entries.get(plan.id);
    const aliasesNode = planNode?.kind === "map" ? planNode.entries.get("aliases") : undefined;
    plan.aliases.forEach((a, i) => {
      const path = `${entry("plans", plan.id)}.aliases[${i}]`;
      const line = aliasesNode?.kind === "seq" ? aliasesNode.items[i] : aliasesNode;
      if (a === plan.id) c.add(path, `"${a}" is the plan's own id`, line);
      else if (entries.has(a)) c.add(path, `"${a}" is already a plan id`, line);
      else if (planAliases.has(a)) {
        const other = planAliases.get(a)!;
        c.add(path, other === plan.id ? `"${a}" is listed twice` : `"${a}" is already an alias of plan ${other}`, line);
      } else planAliases.set(a, plan.id);
    });
  }
  return { plans, planAliases };
}

function parsePlan(c: Checker, id: string, node: Raw, path: string): Plan | undefined {
  const f = fields(c, node, path, PLAN_FIELDS);
  if (!f) return undefined;
  const before = c.problems.length;
  const get = (k: string): Raw | undefined => f.get(k);
  const at = (k: string): string => join(path, k);

  const name = get("name") ? str(c, get("name")!, at("name")) : id;
  const unlimited = get("unlimited") ? bool(c, get("unlimited")!, at("unlimited")) : false;

  let creditsMicros: number | undefined = 0;
  let creditsPerSeatMicros: number | undefined = 0;
  if (unlimited) {
    for (const k of ["credits", "credits_per_seat", "addons"]) {
      if (get(k)) c.add(at(k), "not allowed with unlimited: true (an unlimited plan never refuses for credits)", get(k));
    }
  } else {
    if (get("credits")) creditsMicros = planCredits(c, get("credits")!, at("credits"));
    if (get("credits_per_seat")) creditsPerSeatMicros = planCredits(c, get("credits_per_seat")!, at("credits_per_seat"));
    if (unlimited === false && creditsMicros === 0 && creditsPerSeatMicros === 0) {
      c.add(path, "gives no credits: set credits > 0 or credits_per_seat > 0, or unlimited: true (a plan with 0 credits refuses every paid request)", node);
    }
  }

  const period = get("period") ? cadence(c, get("period")!, at("period")) : "month";
  const billing = get("billing") ? cadence(c, get("billing")!, at("billing")) : period;
  const legacy = get("legacy") ? bool(c, get("legacy")!, at("legacy")) : false;

  const aliases = get("aliases") ? strList(c, get("aliases")!, at("aliases")) : [];
  aliases.forEach((a, i) => {
    const an = get("aliases");
    if (!PLAN_ID_RE.test(a)) c.add(`${at("aliases")}[${i}]`, `a plan alias is ${PLAN_ID_RULE}`, an?.kind === "seq" ? an.items[i] : an);
  });

  const memberCapMicros = get("member_cap") ? planCredits(c, get("member_cap")!, at("member_cap")) : undefined;

  let warnAtPercent: readonly number[] = DEFAULT_WARN_AT_PERCENT;
  const warnNode = get("warn_at");
  if (warnNode) {
    if (warnNode.kind !== "seq") {
      c.add(at("warn_at"), "must be a list of percentages of the period's credits (1-99), e.g. [20, 5]; [] for none", warnNode);
    } else {
      const list: number[] = [];
      warnNode.items.forEach((item, i) => {
        const v = integer(c, item, `${at("warn_at")}[${i}]`, 1, 99);
        if (v === undefined) return;
        if (list.includes(v)) c.add(`${at("warn_at")}[${i}]`, `${v} is listed twice`, item);
        else list.push(v);
      });
      warnAtPercent = list.sort((x, y) => y - x);
    }
  }

  let trial: Plan["trial"];
  const trialNode = get("trial");
  if (trialNode) {
    const tf = fields(c, trialNode, at("trial"), ["credits", "days"]);
    if (tf) {
      const tp = at("trial");
      if (!tf.get("credits")) c.add(join(tp, "credits"), "required (credits the trial gives; 0 for none)", trialNode);
      if (!tf.get("days")) c.add(join(tp, "days"), `required (length of the trial, 1 to ${MAX_TRIAL_DAYS} days)`, trialNode);
      const tc = tf.get("credits") ? planCredits(c, tf.get("credits")!, join(tp, "credits")) : undefined;
      const days = tf.get("days") ? integer(c, tf.get("days")!, join(tp, "days"), 1, MAX_TRIAL_DAYS) : undefined;
      if (tc !== undefined && days !== undefined) trial = { creditsMicros: tc, days };
    }
  }

  const addons = new Map<string, PlanAddon>();
  if (get("addons") && !unlimited) {
    for (const [aid, an] of mapEntries(c, get("addons")!, at("addons"))) {
      const ap = entry(at("addons"), aid);
      if (!PLAN_ID_RE.test(aid)) {
        c.add(ap, `an add-on id is ${PLAN_ID_RULE}`, an);
        continue;
      }
      const addon = parseAddon(c, aid, an, ap);
      if (addon) addons.set(aid, addon);
    }
  }

  if (c.problems.length > before) return undefined;
  if (name === undefined || unlimited === undefined || creditsMicros === undefined || creditsPerSeatMicros === undefined) return undefined;
  if (period === undefined || billing === undefined || legacy === undefined) return undefined;

  const worst = planWorstCaseMicros({ creditsMicros, creditsPerSeatMicros, addons });
  if (worst > SAFE_MICROS) {
    c.add(
      path,
      `at ${MAX_SEATS} seats with every add-on at its max_units, one period could give ${formatScaled(worst, 6)} credits, ` +
        `more than the ${formatScaled(SAFE_MICROS, 6)} an amount can hold exactly: lower credits_per_seat, an add-on's credits or its max_units`,
      node,
    );
    return undefined;
  }
  return {
    id,
    name,
    period,
    billing,
    creditsMicros,
    creditsPerSeatMicros,
    unlimited,
    legacy,
    aliases,
    memberCapMicros,
    trial,
    addons,
    warnAtPercent,
  };
}

function parseAddon(c: Checker, id: string, node: Raw, path: string): PlanAddon | undefined {
  const f = fields(c, node, path, ADDON_FIELDS);
  if (!f) return undefined;
  const before = c.problems.length;
  const name = f.get("name") ? str(c, f.get("name")!, join(path, "name")) : id;
  const cn = f.get("credits");
  if (!cn) c.add(join(path, "credits"), "required (credits one unit gives per period, > 0)", node);
  const creditsPerUnitMicros = cn ? planCredits(c, cn, join(path, "credits"), { positive: true }) : undefined;
  const perSeat = f.get("per_seat") ? bool(c, f.get("per_seat")!, join(path, "per_seat")) : false;
  const maxUnits = f.get("max_units") ? integer(c, f.get("max_units")!, join(path, "max_units"), 1, MAX_ADDON_UNITS) : DEFAULT_ADDON_MAX_UNITS;
  if (c.problems.length > before || name === undefined || creditsPerUnitMicros === undefined || perSeat === undefined || maxUnits === undefined) return undefined;
  return { id, name, creditsPerUnitMicros, perSeat, maxUnits };
}
