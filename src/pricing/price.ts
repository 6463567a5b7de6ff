// Pure pricing: a request (and, at Settle, its real usage) priced with one Catalog into line items.
//
//   priceRequest(catalog, request)        the WORST CASE of a request, for Reserve and Estimate:
//                                         max_output_tokens (defaulted and capped from the catalog) are
//                                         all priced, every image and second asked for is priced.
//   priceUsage(catalog, request, usage)   what was really used, for Settle: the same request, priced with
//                                         the tokens actually used, the images actually produced (3 of 4 →
//                                         3), the video seconds produced. Price it with the catalog VERSION
//                                         the hold was made with (CatalogStore.get(version)).
//
// What is priced:
//   - operation: its fixed price, one line even when it is 0 (a free operation is still usage);
//     units × per_unit when it is priced per unit (units default to 1);
//   - tokens, when the operation has `tokens: true`, or when there is no operation and a model is given.
//     For an operation that is not token-priced, model and token counts are ignored (gateways send them
//     with every call), but image, video and units given to an operation that does not price them are
//     errors (they are explicit quantities; a mismatch is a caller bug).
//     Token counts are inclusive, as in OpenAI's usage: input_tokens includes cached_input_tokens,
//     output_tokens includes reasoning_tokens. Lines: (input − cached) × input price, cached × cached
//     price, (output − reasoning) × output price, reasoning × reasoning price.
//     Worst case: output = max_output_tokens (the request's, else the operation's or model's default,
//     capped to the smaller of the operation's and the model's max_output_tokens). A request's
//     reasoning_tokens is a reasoning budget inside max_output_tokens (default: all of it); when the
//     reasoning price is above the output price, that budget is priced at the reasoning price.
//   - image: count × the price of the exact size (or of the first megapixel tier holding it) at the
//     quality (default: the table's default quality);
//   - video: seconds, rounded up to whole seconds, × the tier's per-second price.
//
// Rounding (integer rules only):
//   - every line: subtotal = ⌈quantity × unitPriceMicros / per⌉ micro-credits (rounded UP to the micro).
//     Token prices are kept exactly as micros per 1,000,000 tokens (per = 1_000_000), so a line of 1,234
//     tokens at 2.5 credits/1M is ⌈1234 × 2_500_000 / 1_000_000⌉ = 3085 micros;
//   - the total is the sum of the lines, then the catalog's `rounding` (`up_to: X` → up to the next
//     multiple of X); `roundedFrom` holds the sum when rounding changed it.
//
// Errors are PricingErrors whose message starts with the wire name of the field
// (`image.width: must be between 1 and 16384`); usage fields are named `usage.<field>`.

import {
  type Catalog,
  MAX_IMAGE_SIDE,
  MAX_TOKENS,
  type ImageTable,
  type Operation,
  type ResolvedModel,
  type VideoTable,
  type VideoTier,
  resolveModel,
} from "./catalog.js";
import { MAX_SAFE_MICROS, ceilDiv, formatCredits, parseScaledDecimal } from "./decimal.js";

export type Count = number | bigint;

export interface ImageRequest {
  readonly width: Count;
  readonly height: Count;
  /** Default: the table's default quality. */
  readonly quality?: string | undefined;
  /** Default 1. */
  readonly count?: Count | undefined;
}

export interface VideoRequest {
  /** Seconds, up to 3 decimal places (a number, or a decimal string); billed rounded up to whole seconds. */
  readonly seconds: number | bigint | string;
  /** Default: the table's default tier. */
  readonly tier?: string | undefined;
}

/** One request to price. An empty string counts as absent for operation, model, quality and tier. */
export interface PriceRequest {
  readonly operation?: string | undefined;
  readonly model?: string | undefined;
  /** Prompt tokens, a known count (including cached ones). Default 0. */
  readonly inputTokens?: Count | undefined;
  /** Of inputTokens, how many the caller expects to be read from cache. Default 0. */
  readonly cachedInputTokens?: Count | undefined;
  /** Reasoning budget inside max_output_tokens. Default: all of max_output_tokens. */
  readonly reasoningTokens?: Count | undefined;
  /** Output cap asked for; defaulted and capped from the catalog. */
  readonly maxOutputTokens?: Count | undefined;
  readonly image?: ImageRequest | undefined;
  readonly video?: VideoRequest | undefined;
  /** For an operation priced per unit; default 1. */
  readonly units?: Count | undefined;
  /** Refuse (priceRequest only) when the worst-case total is above this many micro-credits. */
  readonly maxCreditsMicros?: bigint | undefined;
}

/** What a generation really used. Omitted fields fall back as documented on each. */
export interface Usage {
  /** Default: the request's input_tokens. Includes cached tokens. */
  readonly inputTokens?: Count | undefined;
  /** Default: 0 when inputTokens is given, else the request's cached_input_tokens. */
  readonly cachedInputTokens?: Count | undefined;
  /** Required for a token-priced request. Includes reasoning tokens. */
  readonly outputTokens?: Count | undefined;
  /** Default 0. */
  readonly reasoningTokens?: Count | undefined;
  /** Images produced; default: the request's count; at most the request's count. */
  readonly images?: Count | undefined;
  /** Video seconds produced (billed rounded up to whole seconds); default: the request's seconds. */
  readonly videoSeconds?: number | bigint | string | undefined;
  /** Default: the request's units. */
  readonly units?: Count | undefined;
}

export type LineItemKind =
  | "operation"
  | "units"
  | "input_tokens"
  | "cached_input_tokens"
  | "output_tokens"
  | "reasoning_tokens"
  | "image"
  | "video";

export interface LineItem {
  readonly kind: LineItemKind;
  /** For people: "gpt-4o output tokens (worst case)", "image 1024x1024 standard", … */
  readonly description: string;
  readonly quantity: bigint;
  /** "request", "token", "image", "second", or the operation's unit. */
  readonly unit: string;
  /** Price of `per` units, in micro-credits (per-token prices: micros per 1,000,000 tokens). */
  readonly unitPriceMicros: bigint;
  /** 1n, or 1_000_000n for tokens. */
  readonly per: bigint;
  /** ⌈quantity × unitPriceMicros / per⌉ */
  readonly subtotalMicros: bigint;
}

export interface PriceResult {
  readonly catalogVersion: string;
  readonly operation: string | undefined;
  /** The model whose token prices were used, when tokens were priced. */
  readonly model: ResolvedModel | undefined;
  /** Tokens priced: the effective output cap (worst case: send it upstream as the max_tokens). */
  readonly maxOutputTokens: number | undefined;
  readonly items: readonly LineItem[];
  /** After the catalog's rounding. */
  readonly totalMicros: bigint;
  /** The sum of the lines, when rounding changed it. */
  readonly roundedFrom?: bigint;
}

export type PricingErrorReason = "INVALID_FIELD" | "MAX_CREDITS_EXCEEDED";

/** A request that cannot be priced. `message` starts with `field`. */
export class PricingError extends Error {
  override readonly name = "PricingError";
  constructor(
    /** Wire name of the field at fault: `image.width`, `model`, `usage.output_tokens`, `max_credits`. */
    readonly field: string,
    message: string,
    readonly reason: PricingErrorReason = "INVALID_FIELD",
    /** For MAX_CREDITS_EXCEEDED: the worst case and the limit, in micros. */
    readonly details?: { readonly requiredMicros: bigint; readonly maxCreditsMicros: bigint },
  ) {
    super(`${field}: ${message}`);
  }
}

/** The worst case of a request (Reserve, Estimate). Throws PricingError. */
export function priceRequest(catalog: Catalog, request: PriceRequest): PriceResult {
  const plan = planRequest(catalog, request);
  const items: LineItem[] = [];
  pushFixed(items, plan);
  if (plan.tokens) {
    const t = plan.tokens;
    pushInput(items, t, t.inputTokens, t.cachedInputTokens);
    const p = t.model.model.prices;
    const out = BigInt(t.maxOutputTokens);
    if (p.reasoningPer1M > p.outputPer1M) {
      const budget = t.reasoningBudget ?? out;
      pushTokens(items, "output_tokens", `${t.label} output tokens (worst case)`, out - budget, p.outputPer1M);
      pushTokens(items, "reasoning_tokens", `${t.label} reasoning tokens (worst case)`, budget, p.reasoningPer1M);
    } else {
      pushTokens(items, "output_tokens", `${t.label} output tokens (worst case)`, out, p.outputPer1M);
    }
  }
  if (plan.image) pushImage(items, plan.image, plan.image.count);
  if (plan.video) pushVideo(items, plan.video, plan.video.billedSeconds);

  const result = total(catalog, plan, items);
  const max = request.maxCreditsMicros;
  if (max !== undefined) {
    if (typeof max !== "bigint" || max < 0n) throw new PricingError("max_credits", "must be ≥ 0");
    if (result.totalMicros > max) {
      throw new PricingError(
        "max_credits",
        `the worst case, ${formatCredits(result.totalMicros)} credits, is above the limit of ${formatCredits(max)} credits`,
        "MAX_CREDITS_EXCEEDED",
        { requiredMicros: result.totalMicros, maxCreditsMicros: max },
      );
    }
  }
  return result;
}

/** The real cost of a request (Settle). `request` is the one that was reserved. Throws PricingError. */
export function priceUsage(catalog: Catalog, request: PriceRequest, usage: Usage): PriceResult {
  const plan = planRequest(catalog, request);
  const items: LineItem[] = [];

  let units = plan.units;
  if (usage.units !== undefined) {
    if (!plan.op?.perUnit) throw new PricingError("usage.units", "the request is not priced per unit");
    units = count("usage.units", usage.units, 0, plan.op.perUnit.maxUnits);
  }
  pushFixed(items, { ...plan, units });

  if (plan.tokens) {
    const t = plan.tokens;
    const input = usage.inputTokens === undefined ? t.inputTokens : count("usage.input_tokens", usage.inputTokens, 0, MAX_TOKENS);
    const cached =
      usage.cachedInputTokens !== undefined
        ? count("usage.cached_input_tokens", usage.cachedInputTokens, 0, MAX_TOKENS)
        : usage.inputTokens === undefined
          ? t.cachedInputTokens
          : 0n;
    if (cached > input) throw new PricingError("usage.cached_input_tokens", `must be ≤ input_tokens (${input})`);
    if (usage.outputTokens === undefined) throw new PricingError("usage.output_tokens", "required for a token-priced request");
    const output = count("usage.output_tokens", usage.outputTokens, 0, MAX_TOKENS);
    const reasoning = usage.reasoningTokens === undefined ? 0n : count("usage.reasoning_tokens", usage.reasoningTokens, 0, MAX_TOKENS);
    if (reasoning > output) throw new PricingError("usage.reasoning_tokens", `must be ≤ output_tokens (${output})`);
    const p = t.model.model.prices;
    pushInput(items, t, input, cached);
    pushTokens(items, "output_tokens", `${t.label} output tokens`, output - reasoning, p.outputPer1M);
    pushTokens(items, "reasoning_tokens", `${t.label} reasoning tokens`, reasoning, p.reasoningPer1M);
  }

  if (usage.images !== undefined && !plan.image) throw new PricingError("usage.images", "the request priced no images");
  if (plan.image) {
    const produced = usage.images === undefined ? plan.image.count : count("usage.images", usage.images, 0, Number(plan.image.count));
    pushImage(items, plan.image, produced);
  }
  if (usage.videoSeconds !== undefined && !plan.video) throw new PricingError("usage.video_seconds", "the request priced no video");
  if (plan.video) {
    const seconds =
      usage.videoSeconds === undefined ? plan.video.billedSeconds : videoSeconds("usage.video_seconds", usage.videoSeconds, plan.video.table, true);
    pushVideo(items, plan.video, seconds);
  }
  return total(catalog, plan, items);
}

// ─── Planning: validate a request against the catalog ────────────────────────────────────────────

interface TokenPlan {
  readonly model: ResolvedModel;
  /** "gpt-4o", or "gpt-4o-2024-08-06 as gpt-4o" */
  readonly label: string;
  readonly inputTokens: bigint;
  readonly cachedInputTokens: bigint;
  readonly maxOutputTokens: number;
  readonly reasoningBudget: bigint | undefined;
}

interface ImagePlan {
  readonly description: string;
  readonly priceMicros: bigint;
  readonly count: bigint;
}

interface VideoPlan {
  readonly table: VideoTable;
  readonly tier: VideoTier;
  readonly billedSeconds: bigint;
}

interface Plan {
  readonly op: Operation | undefined;
  readonly units: bigint | undefined;
  readonly tokens: TokenPlan | undefined;
  readonly image: ImagePlan | undefined;
  readonly video: VideoPlan | undefined;
}

function present(s: string | undefined): string | undefined {
  return s === undefined || s === "" ? undefined : s;
}

/**
 * The model whose prices (and tokenizer) a request's tokens go by, or undefined when the request is not
 * token-priced: an operation's `tokens: true` with the request's model or the operation's default, or, without an
 * operation, the request's model.
 */
export function tokenModelOf(catalog: Catalog, operation: string | undefined, model: string | undefined): ResolvedModel | undefined {
  const opName = present(operation);
  const op = opName === undefined ? undefined : catalog.operations.get(opName);
  if (opName !== undefined && !op) throw new PricingError("operation", `unknown operation ${JSON.stringify(opName)}`);
  return tokenModel(catalog, op, present(model));
}

function tokenModel(catalog: Catalog, op: Operation | undefined, modelName: string | undefined): ResolvedModel | undefined {
  if (!(op ? op.tokens : modelName !== undefined)) return undefined;
  const name = modelName ?? op?.model;
  if (name === undefined) throw new PricingError("model", `required (operation ${JSON.stringify(op?.name)} has no default model)`);
  const model = resolveModel(catalog, name);
  if (!model) throw new PricingError("model", `unknown model ${JSON.stringify(name)} (this catalog refuses unknown models)`);
  return model;
}

function planRequest(catalog: Catalog, req: PriceRequest): Plan {
  const opName = present(req.operation);
  let op: Operation | undefined;
  if (opName !== undefined) {
    if (typeof opName !== "string") throw new PricingError("operation", "must be a string");
    op = catalog.operations.get(opName);
    if (!op) throw new PricingError("operation", `unknown operation ${JSON.stringify(opName)}`);
  }
  const modelName = present(req.model);

  // Token counts are always checked for sanity, and priced only when the request is token-priced.
  const inputTokens = req.inputTokens === undefined ? 0n : count("input_tokens", req.inputTokens, 0, MAX_TOKENS);
  const cachedInputTokens = req.cachedInputTokens === undefined ? 0n : count("cached_input_tokens", req.cachedInputTokens, 0, MAX_TOKENS);
  if (cachedInputTokens > inputTokens) throw new PricingError("cached_input_tokens", `must be ≤ input_tokens (${inputTokens})`);
  const askedOut = req.maxOutputTokens === undefined ? undefined : Number(count("max_output_tokens", req.maxOutputTokens, 0, MAX_TOKENS));
  const reasoning = req.reasoningTokens === undefined ? undefined : count("reasoning_tokens", req.reasoningTokens, 0, MAX_TOKENS);

  let tokens: TokenPlan | undefined;
  const model = tokenModel(catalog, op, modelName);
  if (model) {
    const name = model.requested;
    const cap = Math.min(model.model.maxOutputTokens, op?.maxOutputTokens ?? Infinity);
    const dflt = op?.defaultOutputTokens ?? model.model.defaultOutputTokens;
    const maxOutputTokens = Math.min(askedOut ?? dflt, cap);
    if (reasoning !== undefined && reasoning > BigInt(maxOutputTokens)) {
      throw new PricingError("reasoning_tokens", `must be ≤ max_output_tokens (${maxOutputTokens})`);
    }
    const label =
      model.via === "name"
        ? model.model.name
        : model.via === "unknown_models"
          ? `${name} (priced as ${model.model.name})`
          : `${name} as ${model.model.name}`;
    tokens = { model, label, inputTokens, cachedInputTokens, maxOutputTokens, reasoningBudget: reasoning };
  }

  let image: ImagePlan | undefined;
  if (req.image !== undefined && req.image !== null) {
    const table = op ? op.image : catalog.images;
    if (!table) {
      throw new PricingError("image", op ? `operation ${JSON.stringify(op.name)} is not priced by image` : "this catalog has no image prices");
    }
    image = planImage(req.image, table);
  } else if (op?.image) {
    throw new PricingError("image", `required by operation ${JSON.stringify(op.name)}`);
  }

  let video: VideoPlan | undefined;
  if (req.video !== undefined && req.video !== null) {
    const table = op ? op.video : catalog.video;
    if (!table) {
      throw new PricingError("video", op ? `operation ${JSON.stringify(op.name)} is not priced by video` : "this catalog has no video prices");
    }
    const tierName = present(req.video.tier) ?? table.defaultTier;
    const tier = table.tiers.get(tierName);
    if (!tier) {
      throw new PricingError("video.tier", `unknown tier ${JSON.stringify(tierName)} (tiers: ${[...table.tiers.keys()].join(", ")})`);
    }
    video = { table, tier, billedSeconds: videoSeconds("video.seconds", req.video.seconds, table, false) };
  } else if (op?.video) {
    throw new PricingError("video", `required by operation ${JSON.stringify(op.name)}`);
  }

  let units: bigint | undefined;
  if (op?.perUnit) {
    units = req.units === undefined ? 1n : count("units", req.units, 1, op.perUnit.maxUnits);
  } else if (req.units !== undefined) {
    throw new PricingError("units", op ? `operation ${JSON.stringify(op.name)} is not priced per unit` : "needs an operation priced per unit");
  }

  if (!op && !tokens && !image && !video) {
    throw new PricingError("operation", "required: the request names no operation, model, image or video");
  }
  return { op, units, tokens, image, video };
}

function planImage(img: ImageRequest, table: ImageTable): ImagePlan {
  const w = count("image.width", img.width, 1, MAX_IMAGE_SIDE);
  const h = count("image.height", img.height, 1, MAX_IMAGE_SIDE);
  const quality = present(img.quality) ?? table.defaultQuality;
  if (!table.qualities.includes(quality)) {
    throw new PricingError("image.quality", `unknown quality ${JSON.stringify(quality)} (qualities: ${table.qualities.join(", ")})`);
  }
  const n = img.count === undefined ? 1n : count("image.count", img.count, 1, table.maxCount);
  const size = `${w}x${h}`;
  const exact = table.sizes.get(size);
  if (exact) return { description: `image ${size} ${quality}`, priceMicros: exact.get(quality)!, count: n };
  const pixels = w * h;
  const tier = table.tiers.find((t) => t.maxPixels === undefined || pixels <= t.maxPixels);
  if (tier) return { description: `image ${size} (${tier.label}) ${quality}`, priceMicros: tier.prices.get(quality)!, count: n };
  const sizes = [...table.sizes.keys()];
  throw new PricingError(
    "image",
    `no price for size ${size}${sizes.length ? ` (sizes: ${sizes.join(", ")})` : ""}${table.tiers.length ? ` and it is above the largest megapixel tier` : ""}`,
  );
}

// ─── Lines ───────────────────────────────────────────────────────────────────────────────────────

function line(kind: LineItemKind, description: string, quantity: bigint, unit: string, unitPriceMicros: bigint, per: bigint): LineItem {
  return { kind, description, quantity, unit, unitPriceMicros, per, subtotalMicros: ceilDiv(quantity * unitPriceMicros, per) };
}

function pushFixed(items: LineItem[], plan: Pick<Plan, "op" | "units">): void {
  const op = plan.op;
  if (!op) return;
  items.push(line("operation", `operation ${op.name}`, 1n, "request", op.priceMicros, 1n));
  if (op.perUnit && plan.units !== undefined) {
    items.push(line("units", `${op.name} per ${op.perUnit.unit}`, plan.units, op.perUnit.unit, op.perUnit.priceMicros, 1n));
  }
}

function pushTokens(items: LineItem[], kind: LineItemKind, description: string, quantity: bigint, per1M: bigint): void {
  if (quantity > 0n) items.push(line(kind, description, quantity, "token", per1M, 1_000_000n));
}

function pushInput(items: LineItem[], t: TokenPlan, input: bigint, cached: bigint): void {
  const p = t.model.model.prices;
  pushTokens(items, "input_tokens", `${t.label} input tokens`, input - cached, p.inputPer1M);
  pushTokens(items, "cached_input_tokens", `${t.label} cached input tokens`, cached, p.cachedInputPer1M);
}

function pushImage(items: LineItem[], img: ImagePlan, n: bigint): void {
  items.push(line("image", img.description, n, "image", img.priceMicros, 1n));
}

function pushVideo(items: LineItem[], v: VideoPlan, seconds: bigint): void {
  items.push(line("video", `video ${v.tier.name}`, seconds, "second", v.tier.perSecondMicros, 1n));
}

function total(catalog: Catalog, plan: Plan, items: LineItem[]): PriceResult {
  const sum = items.reduce((a, i) => a + i.subtotalMicros, 0n);
  let totalMicros = sum;
  if (catalog.rounding.kind === "up_to") totalMicros = ceilDiv(sum, catalog.rounding.stepMicros) * catalog.rounding.stepMicros;
  if (totalMicros > MAX_SAFE_MICROS) {
    throw new PricingError("request", `costs ${formatCredits(totalMicros)} credits, above the largest amount creditd accepts`);
  }
  return {
    catalogVersion: catalog.version,
    operation: plan.op?.name,
    model: plan.tokens?.model,
    maxOutputTokens: plan.tokens?.maxOutputTokens,
    items,
    totalMicros,
    ...(totalMicros !== sum ? { roundedFrom: sum } : {}),
  };
}

// ─── Field checks ────────────────────────────────────────────────────────────────────────────────

function count(field: string, v: unknown, min: number, max: number): bigint {
  let n: bigint | undefined;
  if (typeof v === "bigint") n = v;
  else if (typeof v === "number" && Number.isSafeInteger(v)) n = BigInt(v);
  if (n === undefined || n < BigInt(min) || n > BigInt(max)) {
    throw new PricingError(field, `must be an integer between ${min} and ${max}`);
  }
  return n;
}

/** Seconds (≤ 3 decimals) → billed whole seconds, rounded up. */
function videoSeconds(field: string, v: unknown, table: VideoTable, allowZero: boolean): bigint {
  let text: string | undefined;
  if (typeof v === "bigint") text = v.toString();
  else if (typeof v === "number" && Number.isFinite(v)) text = String(v);
  else if (typeof v === "string") text = v;
  const parsed = text === undefined ? undefined : parseScaledDecimal(text, 3);
  const millis = parsed?.ok ? parsed.value : undefined;
  const min = allowZero ? 0n : 1n;
  if (millis === undefined || millis < min || millis > BigInt(table.maxSeconds) * 1000n) {
    throw new PricingError(field, `must be a number of seconds ${allowZero ? "between 0 and" : "above 0 and at most"} ${table.maxSeconds} (at most 3 decimals)`);
  }
  return ceilDiv(millis, 1000n);
}
