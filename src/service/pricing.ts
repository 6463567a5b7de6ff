import { create, toBinary } from "@bufbuild/protobuf";
import { Code, type ConnectError } from "@connectrpc/connect";
import {
  type LineItem as LineItemMessage,
  LineItemSchema,
  type PricedRequest,
  PricedRequestSchema,
  type Receipt,
  ReceiptSchema,
  type Usage as UsageMessage,
} from "../gen/creditd/v1/pricing_pb.js";
import { MeterOverloadedError, MeteringInputError, type Meter, digestOf, planChat, sequenceDigest } from "../metering/index.js";
import { type Catalog, resolveModel, tokenizerSpecOf } from "../pricing/catalog.js";
import { PricingError, type PriceRequest, type PriceResult, priceRequest, priceUsage, tokenModelOf } from "../pricing/price.js";
import type { CatalogStore } from "../pricing/store.js";
import type { CatalogRegistry } from "../pricing/registry.js";
import { type Quantities, quantitiesOf } from "../usage/quantities.js";
import { Reason, domainError, invalidField } from "./errors.js";
import { receiptJson } from "./receipt-json.js";

/** What a priced hold keeps for its Settle: the counts it was priced with (never text), as compact JSON. */
interface PricingContext {
  op?: string;
  model?: string;
  in: string;
  cached: string;
  out?: number;
  reasoning?: string;
  image?: { w: number; h: number; q?: string; n?: number };
  video?: { s: number; tier?: string };
  units?: string;
  /** The tokenizer the input was counted with, and whether the count is an estimate. */
  tok?: string;
  est?: boolean;
}

export interface PricedHold {
  amountMicros: number;
  fingerprint: string;
  context: string;
  catalogVersion: string;
  receipt: Receipt;
  maxOutputTokens: number;
}

export interface PricedCharge {
  chargeMicros: number;
  receipt: Receipt;
  /** The receipt as stored with the reservation and in the ledger entry. */
  receiptJson: string;
  /** What was charged for (tokens, images, seconds, units), for the ledger entry and the usage aggregates. */
  quantities: Quantities;
}

/**
 * Pricing for the RPCs: counts what the proxy sends (tokens of text or chat, off the event loop when large),
 * prices it with the catalog, and turns pricing and counting errors into INVALID_ARGUMENT naming the field
 * (prefixed with where the request sat: `priced.`, `requests[2].`, `usage.`).
 */
export class Pricer {
  private loadedAtMs = Date.now();

  constructor(
    private readonly catalogs: CatalogStore,
    private readonly meter: Meter,
    private readonly registry: CatalogRegistry,
  ) {
    catalogs.onChange(() => {
      this.loadedAtMs = Date.now();
    });
  }

  get catalog(): Catalog {
    return this.catalogs.current;
  }

  /** When the catalog in use was loaded (the start, or the last reload that changed it). */
  get catalogLoadedAtMs(): number {
    return this.loadedAtMs;
  }

  /** The worst case of a request, for Reserve; the catalog version is published so any replica can settle it. */
  async priceHold(field: string, accountId: string, p: PricedRequest): Promise<PricedHold> {
    const catalog = this.catalogs.current;
    const { request, context, tokenizer, inputDigest } = await this.count(field, accountId, catalog, p);
    const result = guard(field, () => priceRequest(catalog, request));
    await this.registry.publish(catalog);
    const receipt = toReceipt(result, tokenizer);
    return {
      amountMicros: Number(result.totalMicros),
      // Hashing the request (text included) identifies a retry without keeping any of its text.
      fingerprint: fingerprintOf(p, inputDigest),
      context: JSON.stringify({ ...context, out: result.maxOutputTokens }),
      catalogVersion: catalog.version,
      receipt,
      maxOutputTokens: result.maxOutputTokens ?? 0,
    };
  }

  /** Prices requests without holding anything. */
  async estimate(field: string, accountId: string, p: PricedRequest): Promise<{ receipt: Receipt; maxOutputTokens: number }> {
    const catalog = this.catalogs.current;
    const { request, tokenizer } = await this.count(field, accountId, catalog, p);
    const result = guard(field, () => priceRequest(catalog, request));
    return { receipt: toReceipt(result, tokenizer), maxOutputTokens: result.maxOutputTokens ?? 0 };
  }

  /** The real usage of a priced hold, with the catalog version the hold was priced with. */
  async priceUsage(
    accountId: string,
    pricing: { context: string; catalogVersion: string },
    usage: UsageMessage,
  ): Promise<PricedCharge> {
    const catalog = this.catalogs.get(pricing.catalogVersion) ?? (await this.registry.fetch(pricing.catalogVersion));
    if (!catalog) {
      throw domainError(
        Code.FailedPrecondition,
        Reason.CatalogVersionGone,
        `the catalog version this hold was priced with (${pricing.catalogVersion}) is no longer available; settle with charge_micros`,
        { catalog_version: pricing.catalogVersion },
      );
    }
    const ctx = JSON.parse(pricing.context) as PricingContext;
    const request = requestOf(ctx);
    let outputTokens = usage.outputTokens;
    let tokenizer = { label: ctx.tok ?? "", estimated: ctx.est ?? false };
    if (outputTokens === undefined && usage.outputText !== "") {
      const model = ctx.model ? resolveModel(catalog, ctx.model) : undefined;
      if (!model) throw invalidField("usage.output_text", "this reservation was not priced by tokens");
      const counted = await this.meterCall(() =>
        this.meter.countText("usage.output_text", usage.outputText, tokenizerSpecOf(model.model), { scope: accountId }),
      );
      outputTokens = BigInt(counted.tokens);
      tokenizer = { label: counted.tokenizer, estimated: tokenizer.estimated || counted.estimated };
    }
    const result = guard("usage", () =>
      priceUsage(catalog, request, {
        inputTokens: usage.inputTokens,
        cachedInputTokens: usage.cachedInputTokens,
        outputTokens,
        reasoningTokens: usage.reasoningTokens,
        images: usage.images,
        videoSeconds: usage.videoSeconds,
        units: usage.units,
      }),
    );
    const receipt = toReceipt(result, tokenizer);
    return {
      chargeMicros: Number(result.totalMicros),
      receipt,
      receiptJson: receiptJson(receipt),
      quantities: quantitiesOf(result.items),
    };
  }

  /** Counts the input (the proxy's count, plain text or chat) and builds the pricing request and its context. */
  private async count(
    field: string,
    accountId: string,
    catalog: Catalog,
    p: PricedRequest,
  ): Promise<{
    request: PriceRequest;
    context: PricingContext;
    tokenizer: { label: string; estimated: boolean };
    /** The Meter's digest of the input (inputDigestOf; for the fingerprint). */
    inputDigest: string;
  }> {
    let inputTokens = 0n;
    let tokenizer = { label: "", estimated: false };
    let inputDigest = "";
    if (p.input.case === "inputTokens") {
      inputTokens = p.input.value;
    } else if (p.input.case === "text" || p.input.case === "chat") {
      const model = guard(field, () => tokenModelOf(catalog, p.operation, p.model));
      if (!model) throw invalidField(`${field}.${p.input.case}`, "this request is not priced by tokens: leave the input out");
      const spec = tokenizerSpecOf(model.model);
      const input = p.input;
      const counted = await this.meterCall(() =>
        input.case === "text"
          ? this.meter.countText(`${field}.text`, input.value, spec, { scope: accountId })
          : this.meter.countChat(`${field}.chat.messages`, input.value.messages.map(chatMessage), tools(`${field}.chat.tools`, input.value.tools), spec, {
              scope: accountId,
              toolsField: `${field}.chat.tools`,
            }),
      );
      inputTokens = BigInt(counted.tokens);
      tokenizer = { label: counted.tokenizer, estimated: counted.estimated };
      inputDigest = counted.digest;
    }
    const context: PricingContext = {
      in: inputTokens.toString(),
      cached: p.cachedInputTokens.toString(),
      ...(p.operation ? { op: p.operation } : {}),
      ...(p.model ? { model: p.model } : {}),
      ...(p.reasoningTokens ? { reasoning: p.reasoningTokens.toString() } : {}),
      ...(p.image ? { image: { w: p.image.width, h: p.image.height, q: p.image.quality, n: p.image.count || 1 } } : {}),
      ...(p.video ? { video: { s: p.video.seconds, tier: p.video.tier } } : {}),
      ...(p.units ? { units: p.units.toString() } : {}),
      ...(tokenizer.label ? { tok: tokenizer.label, est: tokenizer.estimated } : {}),
    };
    const request: PriceRequest = {
      ...requestOf(context),
      maxOutputTokens: p.maxOutputTokens || undefined,
      maxCreditsMicros: p.maxCreditsMicros,
    };
    return { request, context, tokenizer, inputDigest };
  }

  private async meterCall<T>(f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (err) {
      if (err instanceof MeteringInputError) throw invalidField(err.field, stripField(err.message, err.field));
      if (err instanceof MeterOverloadedError) {
        throw domainError(Code.Unavailable, Reason.CountingOverloaded, "token counting is overloaded; retry shortly");
      }
      throw err;
    }
  }
}

/**
 * What identifies a priced request's input without its text, as the Meter hands it back with the count
 * (MeterCount.digest): a text's digestOf ("" for an empty one), a chat's sequenceDigest of the strings it is counted
 * by (planChat: tool lines, then each message's content and name), "" for any other input. Computing it here hashes
 * every text: the Pricer takes the Meter's instead. A chat must be one the Meter could count (its tools' parameters
 * JSON objects).
 */
export function inputDigestOf(p: PricedRequest): string {
  const input = p.input;
  if (input.case === "text") return input.value === "" ? "" : digestOf(input.value);
  if (input.case !== "chat") return "";
  const plan = planChat("chat.messages", input.value.messages.map(chatMessage), tools("chat.tools", input.value.tools), "o200k_base");
  return sequenceDigest(plan.texts);
}

/**
 * The idempotency fingerprint of a priced Reserve (same request id with another fingerprint: a conflict), from the
 * input's digest the Meter already computed (inputDigestOf), so that no text is encoded or hashed a second time:
 * - a text: SHA-256 of the request's protobuf encoding with the text replaced by its digest;
 * - a chat: SHA-256 of the JSON of [the request's encoding without the messages (base64), each message's role,
 *   name and content length, the chat's digest]. The digest covers the sequence of the chat's strings with their
 *   lengths and the rest says where each message's content sits in it (a message's strings are its content, then
 *   its name; an empty content is left out), so any change of a content changes the fingerprint. A JSON text starts
 *   with "[", which no proto3 encoding of the request does (0x5B is a group start), so the two forms never meet.
 *   A new field of ChatMessage must be added to the message tuple (test/service/pricing-fingerprint.test.ts checks
 *   the fields);
 * - anything else: SHA-256 of the request's encoding.
 * Two requests get one fingerprint only if they are equal, up to SHA-256 collisions.
 */
export function fingerprintOf(p: PricedRequest, inputDigest: string = inputDigestOf(p)): string {
  const input = p.input;
  if (input.case === "text") {
    return digestOf(toBinary(PricedRequestSchema, { ...p, input: { case: "text", value: inputDigest } }));
  }
  if (input.case === "chat") {
    const rest = toBinary(PricedRequestSchema, { ...p, input: { case: "chat", value: { ...input.value, messages: [] } } });
    const messages = input.value.messages.map((m) => [m.role, m.name, m.content.length]);
    return digestOf(JSON.stringify([Buffer.from(rest.buffer, rest.byteOffset, rest.byteLength).toString("base64"), messages, inputDigest]));
  }
  return digestOf(toBinary(PricedRequestSchema, p));
}

function requestOf(c: PricingContext): PriceRequest {
  return {
    operation: c.op,
    model: c.model,
    inputTokens: BigInt(c.in),
    cachedInputTokens: BigInt(c.cached),
    maxOutputTokens: c.out,
    reasoningTokens: c.reasoning === undefined ? undefined : BigInt(c.reasoning),
    image: c.image ? { width: c.image.w, height: c.image.h, quality: c.image.q || undefined, count: c.image.n } : undefined,
    video: c.video ? { seconds: c.video.s, tier: c.video.tier || undefined } : undefined,
    units: c.units === undefined ? undefined : BigInt(c.units),
  };
}

function chatMessage(m: { role: string; content: string; name: string }): { role: string; content: string; name?: string } {
  return m.name ? { role: m.role, content: m.content, name: m.name } : { role: m.role, content: m.content };
}

function tools(field: string, list: ReadonlyArray<{ name: string; description: string; parametersJson: string }>) {
  return list.map((t, i) => {
    let parameters: Record<string, unknown> | undefined;
    if (t.parametersJson) {
      try {
        parameters = JSON.parse(t.parametersJson) as Record<string, unknown>;
      } catch {
        throw invalidField(`${field}[${i}].parameters_json`, "must be a JSON object (a JSON Schema)");
      }
    }
    return {
      type: "function" as const,
      function: { name: t.name, ...(t.description ? { description: t.description } : {}), ...(parameters ? { parameters } : {}) },
    };
  });
}

/** Runs pricing and turns its errors into errors naming the field under `prefix`. */
function guard<T>(prefix: string, f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof PricingError) throw pricingError(prefix, err);
    throw err;
  }
}

function pricingError(prefix: string, err: PricingError): ConnectError {
  const field = `${prefix}.${err.field}`;
  if (err.reason === "MAX_CREDITS_EXCEEDED" && err.details) {
    return domainError(Code.FailedPrecondition, Reason.MaxCreditsExceeded, `${field}: ${stripField(err.message, err.field)}`, {
      field,
      required_micros: String(err.details.requiredMicros),
      max_credits_micros: String(err.details.maxCreditsMicros),
    });
  }
  return invalidField(field, stripField(err.message, err.field));
}

function stripField(message: string, field: string): string {
  return message.startsWith(`${field}: `) ? message.slice(field.length + 2) : message;
}

export function toReceipt(result: PriceResult, tokenizer: { label: string; estimated: boolean }): Receipt {
  return create(ReceiptSchema, {
    items: result.items.map(
      (i): LineItemMessage =>
        create(LineItemSchema, {
          description: i.description,
          quantity: i.quantity,
          unit: i.unit,
          unitPriceMicros: i.unitPriceMicros,
          per: i.per,
          subtotalMicros: i.subtotalMicros,
        }),
    ),
    totalMicros: result.totalMicros,
    catalogVersion: result.catalogVersion,
    tokenizer: tokenizer.label,
    estimated: tokenizer.estimated,
    roundedFromMicros: result.roundedFrom ?? 0n,
  });
}
