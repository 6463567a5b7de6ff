// What the usage tests share: a Ledger on a fresh prefix with a manual clock (and the usage settings under test),
// the real Credit and Usage service handlers with a real Pricer, and short helpers for priced generations.

import { type MessageInitShape, create } from "@bufbuild/protobuf";
import { type Cluster, Redis } from "ioredis";
import { ReserveRequestSchema, RefundRequestSchema, SettleRequestSchema } from "../../src/gen/creditd/v1/credit_service_pb.js";
import { PricedRequestSchema, UsageSchema } from "../../src/gen/creditd/v1/pricing_pb.js";
import {
  type ExportUsageRequest,
  ExportUsageRequestSchema,
  GetUsageSummaryRequestSchema,
  ListUsageRequestSchema,
  type UsageRecord,
  type UsageFilter,
  UsageFilterSchema,
} from "../../src/gen/creditd/v1/usage_service_pb.js";
import { ManualClock } from "../../src/ledger/clock.js";
import { Ledger } from "../../src/ledger/ledger.js";
import { creditService } from "../../src/service/credit-service.js";
import { usageService } from "../../src/service/usage-service.js";
import { C, T0, give } from "../support/ledger.js";
import { testPricer } from "../support/pricing.js";
import { uniquePrefix } from "../support/redis.js";

/**
 * Prices that make every charge easy to check by hand (no rounding): m-small costs 1,000 micros per input token and
 * 2,000 per output token, m-large 10,000 and 30,000; an image 2 credits; rewrite 1 credit. Any other model name is
 * priced as m-small, so tests can use model names with separators in them.
 */
export const CATALOG = `
name: usage tests
unknown_models: { price_as: m-small }
operations:
  chat: { tokens: true, model: m-small, default_output_tokens: 100, max_output_tokens: 1000 }
  image.generate:
    image: { max_count: 4, sizes: { 1024x1024: 2 } }
  rewrite: { price: 1 }
models:
  m-small: { input_per_1m: 1000, output_per_1m: 2000, encoding: o200k_base, max_output_tokens: 1000 }
  m-large: { input_per_1m: 10000, output_per_1m: 30000, encoding: o200k_base, max_output_tokens: 1000 }
`;

export const ctx = { signal: new AbortController().signal };

export type Harness = ReturnType<typeof harness>;

export function harness(
  redis: Redis | Cluster,
  opts: { ledgerRetentionMs?: number; usageSummaryDays?: number; maxLen?: number } = {},
) {
  const clock = new ManualClock(T0);
  const prefix = uniquePrefix();
  const ledger = new Ledger(redis, {
    keyPrefix: prefix,
    retentionMs: 86_400_000,
    ledgerMaxEntries: opts.maxLen ?? 0,
    ...(opts.ledgerRetentionMs !== undefined ? { ledgerRetentionMs: opts.ledgerRetentionMs } : {}),
    ...(opts.usageSummaryDays !== undefined ? { usageSummaryDays: opts.usageSummaryDays } : {}),
    clock,
  });
  // The catalog registry takes a Cluster as well (testPricer's type says Redis only).
  const pricing = testPricer(redis as Redis, prefix, { catalogSource: CATALOG });
  const credit = creditService({ ledger, pricer: pricing.pricer, holdTtlDefaultSeconds: 600, holdTtlMaxSeconds: 3600 });
  const usage = usageService({ ledger });
  let n = 0;

  const h = {
    ledger,
    clock,
    prefix,
    redis,
    credit,
    usage,
    close: () => pricing.close(),
    grant: (accountId: string, credits: number) => give(ledger, accountId, credits, "topup"),

    /** A priced Reserve; returns the reservation id. */
    async reserve(
      accountId: string,
      p: MessageInitShape<typeof PricedRequestSchema>,
      o: { memberId?: string; requestId?: string } = {},
    ): Promise<string> {
      const r = await credit.reserve(
        create(ReserveRequestSchema, {
          accountId,
          requestId: o.requestId ?? `r${++n}`,
          memberId: o.memberId ?? "",
          cost: { case: "priced", value: create(PricedRequestSchema, p) },
        }),
        ctx,
      );
      return r.reservationId;
    },

    async settle(reservationId: string, u: MessageInitShape<typeof UsageSchema>) {
      return credit.settle(
        create(SettleRequestSchema, { reservationId, cost: { case: "usage", value: create(UsageSchema, u) } }),
        ctx,
      );
    },

    /** A chat generation on `model`: held with `input` tokens and 100 output, settled with what it used. */
    async chat(
      accountId: string,
      model: string,
      used: { input: number; output: number; cached?: number; reasoning?: number },
      o: { memberId?: string; requestId?: string } = {},
    ): Promise<string> {
      const id = await h.reserve(accountId, { operation: "chat", model, input: { case: "inputTokens", value: BigInt(used.input) }, maxOutputTokens: 100n }, o);
      await h.settle(id, {
        inputTokens: BigInt(used.input),
        outputTokens: BigInt(used.output),
        ...(used.cached !== undefined ? { cachedInputTokens: BigInt(used.cached) } : {}),
        ...(used.reasoning !== undefined ? { reasoningTokens: BigInt(used.reasoning) } : {}),
      });
      return id;
    },

    async refund(reservationId: string, reason: string) {
      return credit.refund(create(RefundRequestSchema, { reservationId, reason }), ctx);
    },

    list(
      accountId: string,
      o: { filter?: MessageInitShape<typeof UsageFilterSchema>; pageSize?: number; pageToken?: string } = {},
    ) {
      return usage.listUsage(
        create(ListUsageRequestSchema, {
          accountId,
          ...(o.filter ? { filter: create(UsageFilterSchema, o.filter) } : {}),
          pageSize: o.pageSize ?? 0,
          pageToken: o.pageToken ?? "",
        }),
        ctx,
      );
    },

    /** Every record, following next_page_token; also returns the pages' sizes. */
    async listAll(
      accountId: string,
      o: { filter?: MessageInitShape<typeof UsageFilterSchema>; pageSize?: number } = {},
    ): Promise<{ records: UsageRecord[]; pages: Array<{ size: number; more: boolean }> }> {
      const records: UsageRecord[] = [];
      const pages: Array<{ size: number; more: boolean }> = [];
      let pageToken = "";
      do {
        const page = await h.list(accountId, { ...o, pageToken });
        records.push(...page.records);
        pages.push({ size: page.records.length, more: page.nextPageToken !== "" });
        pageToken = page.nextPageToken;
        if (pages.length > 10_000) throw new Error("paging does not end");
      } while (pageToken !== "");
      return { records, pages };
    },

    summary(accountId: string, fromDate = "", toDate = "") {
      return usage.getUsageSummary(create(GetUsageSummaryRequestSchema, { accountId, fromDate, toDate }), ctx);
    },

    /** The export's bytes as text. */
    async exportText(req: MessageInitShape<typeof ExportUsageRequestSchema>, signal = ctx.signal): Promise<string> {
      let text = "";
      const decoder = new TextDecoder();
      for await (const chunk of usage.exportUsage(create(ExportUsageRequestSchema, req) as ExportUsageRequest, { signal })) {
        text += decoder.decode(chunk.data, { stream: true });
      }
      return text + decoder.decode();
    },
  };
  return h;
}

/**
 * `cycles` reserve + settle cycles (2 ledger entries each) through the real scripts, pipelined: a block of
 * `block` cycles at a time, all on one millisecond of the manual clock (block b at start + b seconds), each Settle
 * with the receipt and quantities of one real priced generation, as a priced Settle writes them. Returns the
 * time of the first block.
 */
export async function bulkCycles(h: Harness, url: string, accountId: string, cycles: number, block = 1000): Promise<number> {
  await h.chat(accountId, "m-small", { input: 1200, output: 350, cached: 200 }, { memberId: "ann" });
  const [, fields] = (await h.redis.xrevrange(h.ledger.keys.account(accountId).ledger, "+", "-", "COUNT", 1))[0]!;
  const get = (name: string) => fields[fields.indexOf(name) + 1]!;
  const receipt = get("receipt");
  const qty = get("qty");
  const pipelined = new Redis(url, { enableAutoPipelining: true });
  try {
    const bulk = new Ledger(pipelined, { keyPrefix: h.prefix, retentionMs: 3_600_000, ledgerMaxEntries: 0, clock: h.clock });
    const start = (h.clock.nowMs() ?? T0) + 1000;
    for (let b = 0; b * block < cycles; b++) {
      h.clock.set(start + b * 1000);
      await Promise.all(
        Array.from({ length: Math.min(block, cycles - b * block) }, async (_, i) => {
          const requestId = `b${b}-${i}`;
          const r = await bulk.reserve({
            accountId, requestId, amountMicros: 5000, ttlMs: 600_000, memberId: "ann",
            usage: { operation: "chat", model: "m-small" },
          });
          if (r.status !== "held") throw new Error(JSON.stringify(r));
          const s = await bulk.settle({ accountId, requestId }, 4100, receipt, qty);
          if (s.status !== "settled") throw new Error(JSON.stringify(s));
        }),
      );
    }
    return start;
  } finally {
    pipelined.disconnect();
  }
}

export function filterOf(f: MessageInitShape<typeof UsageFilterSchema>): UsageFilter {
  return create(UsageFilterSchema, f);
}

export { C, T0 };
