// What a charged generation used, as priced: derived from the Settle's line items (so it is exactly what was
// charged for, after the fallbacks to the hold's counts), and kept in the settle ledger entry as a short list of
// integers, "in,cached,out,reasoning,images,video_seconds,units" with trailing zeros left out ("19,0,42").
// The Settle script reads the input and output tokens from it for the usage aggregates (lua/includes/usage.lua).

import type { LineItem } from "../pricing/price.js";

export interface Quantities {
  /** Includes the cached input tokens (OpenAI's convention, as in Usage). */
  inputTokens: bigint;
  cachedInputTokens: bigint;
  /** Includes the reasoning tokens. */
  outputTokens: bigint;
  reasoningTokens: bigint;
  images: bigint;
  /** Billed seconds (whole seconds). */
  videoSeconds: bigint;
  units: bigint;
}

const ORDER = [
  "inputTokens", "cachedInputTokens", "outputTokens", "reasoningTokens", "images", "videoSeconds", "units",
] as const satisfies ReadonlyArray<keyof Quantities>;

export function zeroQuantities(): Quantities {
  return { inputTokens: 0n, cachedInputTokens: 0n, outputTokens: 0n, reasoningTokens: 0n, images: 0n, videoSeconds: 0n, units: 0n };
}

/** The quantities a priced charge's line items charged for. */
export function quantitiesOf(items: readonly Pick<LineItem, "kind" | "quantity">[]): Quantities {
  const q = zeroQuantities();
  for (const item of items) {
    switch (item.kind) {
      case "input_tokens":
        q.inputTokens += item.quantity;
        break;
      case "cached_input_tokens":
        q.inputTokens += item.quantity;
        q.cachedInputTokens += item.quantity;
        break;
      case "output_tokens":
        q.outputTokens += item.quantity;
        break;
      case "reasoning_tokens":
        q.outputTokens += item.quantity;
        q.reasoningTokens += item.quantity;
        break;
      case "image":
        q.images += item.quantity;
        break;
      case "video":
        q.videoSeconds += item.quantity;
        break;
      case "units":
        q.units += item.quantity;
        break;
      case "operation":
        break;
    }
  }
  return q;
}

/** "19,0,42": never empty (an empty field means "not priced"), so all zeros is "0". */
export function encodeQuantities(q: Quantities): string {
  const values = ORDER.map((k) => q[k].toString());
  while (values.length > 1 && values[values.length - 1] === "0") values.pop();
  return values.join(",");
}

/** The inverse of encodeQuantities; missing trailing values are 0. Undefined when the text is not one. */
export function decodeQuantities(text: string): Quantities | undefined {
  if (!/^\d+(,\d+){0,6}$/.test(text)) return undefined;
  const q = zeroQuantities();
  text.split(",").forEach((v, i) => {
    q[ORDER[i]!] = BigInt(v);
  });
  return q;
}
