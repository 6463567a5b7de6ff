// A JSON-friendly view of a catalog (prices as exact credit strings), for an RPC that shows the loaded
// catalog next to its version and source text.

import type { Catalog, ImageTable, VideoTable } from "./catalog.js";
import { formatCredits, formatScaled } from "./decimal.js";

export interface CatalogDescription {
  readonly version: string;
  readonly name: string | undefined;
  readonly path: string | undefined;
  readonly rounding: string;
  readonly unknownModels: string;
  readonly operations: ReadonlyArray<Record<string, unknown>>;
  readonly models: ReadonlyArray<Record<string, unknown>>;
  readonly images: Record<string, unknown> | undefined;
  readonly video: Record<string, unknown> | undefined;
}

/** Token prices per 1M tokens, as credits. */
const per1M = (micros: bigint): string => formatCredits(micros);

function images(t: ImageTable): Record<string, unknown> {
  const prices = (m: ReadonlyMap<string, bigint>): Record<string, string> =>
    Object.fromEntries([...m].map(([q, p]) => [q, formatCredits(p)]));
  return {
    qualities: t.qualities,
    defaultQuality: t.defaultQuality,
    maxCount: t.maxCount,
    sizes: Object.fromEntries([...t.sizes].map(([s, m]) => [s, prices(m)])),
    tiers: t.tiers.map((tier) => ({
      maxMegapixels: tier.maxPixels === undefined ? undefined : formatScaled(tier.maxPixels, 6),
      prices: prices(tier.prices),
    })),
  };
}

function video(t: VideoTable): Record<string, unknown> {
  return {
    defaultTier: t.defaultTier,
    maxSeconds: t.maxSeconds,
    tiers: Object.fromEntries([...t.tiers].map(([n, tier]) => [n, { perSecond: formatCredits(tier.perSecondMicros) }])),
  };
}

export function describeCatalog(c: Catalog): CatalogDescription {
  return {
    version: c.version,
    name: c.name,
    path: c.path,
    rounding: c.rounding.kind === "none" ? "none" : `up_to ${formatCredits(c.rounding.stepMicros)}`,
    unknownModels: c.unknownModels.kind === "refuse" ? "refuse" : `price_as ${c.unknownModels.model}`,
    operations: [...c.operations.values()].map((o) => ({
      name: o.name,
      description: o.description,
      price: formatCredits(o.priceMicros),
      perUnit: o.perUnit ? { price: formatCredits(o.perUnit.priceMicros), unit: o.perUnit.unit, maxUnits: o.perUnit.maxUnits } : undefined,
      tokens: o.tokens,
      model: o.model,
      maxOutputTokens: o.maxOutputTokens,
      image: o.image ? images(o.image) : undefined,
      video: o.video ? video(o.video) : undefined,
    })),
    models: [...c.models.values()].map((m) => ({
      name: m.name,
      inputPer1M: per1M(m.prices.inputPer1M),
      cachedInputPer1M: per1M(m.prices.cachedInputPer1M),
      outputPer1M: per1M(m.prices.outputPer1M),
      reasoningPer1M: per1M(m.prices.reasoningPer1M),
      aliases: m.aliases,
      patterns: m.patterns,
      encoding: m.tokenizer.encoding,
      tokenizer: m.tokenizer.label,
      estimated: m.tokenizer.estimate,
      defaultOutputTokens: m.defaultOutputTokens,
      maxOutputTokens: m.maxOutputTokens,
    })),
    images: c.images ? images(c.images) : undefined,
    video: c.video ? video(c.video) : undefined,
  };
}
