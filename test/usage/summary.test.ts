// GetUsageSummary: the per-day, per-(operation, model) aggregates the Settle and Refund scripts keep.
import { create } from "@bufbuild/protobuf";
import { Cluster } from "ioredis";
import { Code } from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  ExportFormat,
  GetUsageSummaryRequestSchema,
  type GetUsageSummaryResponse,
} from "../../src/gen/creditd/v1/usage_service_pb.js";
import { DAY, HOUR, snapshot } from "../support/ledger.js";
import { startTestCluster, useTestRedis } from "../support/redis.js";
import { rejection } from "../support/rejection.js";
import { C, T0, type Harness, ctx, harness } from "./harness.js";

const env = useTestRedis();
let h: Harness;
const acct = "acme";

afterEach(() => h.close());

/** The summary as plain rows, amounts as numbers (all small here). */
function plain(s: GetUsageSummaryResponse) {
  const t = (x: { generations: bigint; creditsMicros: bigint; refundedMicros: bigint; inputTokens: bigint; outputTokens: bigint } | undefined) =>
    x ? [Number(x.generations), Number(x.creditsMicros), Number(x.refundedMicros), Number(x.inputTokens), Number(x.outputTokens)] : null;
  return {
    days: s.days.map((d) => ({ date: d.date, totals: t(d.totals), groups: d.groups.map((g) => [g.operation, g.model, ...t(g.totals)!]) })),
    groups: s.groups.map((g) => [g.operation, g.model, ...t(g.totals)!]),
    totals: t(s.totals),
  };
}

// m-small: 1,000 micros per input token, 2,000 per output token; m-large: 10,000 and 30,000; rewrite: 1 credit.
const small = (i: number, o: number) => i * 1000 + o * 2000;
const large = (i: number, o: number) => i * 10_000 + o * 30_000;

describe("by day and by operation/model", () => {
  beforeEach(async () => {
    h = harness(env.redis);
    await h.grant(acct, 10_000);
  });

  it("sums each UTC day's charges per group, and the range per group, most credits first", async () => {
    // T0 is 2026-01-15 12:00 UTC. Day 1: two small chats, one large, a rewrite.
    const a = await h.chat(acct, "m-small", { input: 10, output: 20 }, { memberId: "ann" });
    await h.chat(acct, "m-small", { input: 30, output: 5 });
    await h.chat(acct, "m-large", { input: 4, output: 2 });
    await h.settle(await h.reserve(acct, { operation: "rewrite" }), {});
    // 11:59:59.999 later is still Jan 15; one more millisecond is Jan 16.
    h.clock.set(Date.UTC(2026, 0, 15, 23, 59, 59, 999));
    await h.chat(acct, "m-large", { input: 1, output: 1 });
    h.clock.set(Date.UTC(2026, 0, 16));
    await h.chat(acct, "m-small", { input: 100, output: 100 });
    // Jan 18 (nothing on Jan 17): the Jan 15 generation `a` is refunded. It counts on the day of the refund.
    h.clock.set(Date.UTC(2026, 0, 18, 9));
    await h.refund(a, "support");

    const s = plain(await h.summary(acct, "2026-01-14", "2026-01-18"));
    expect(s.days).toEqual([
      {
        date: "2026-01-15",
        totals: [5, small(10, 20) + small(30, 5) + large(4, 2) + C + large(1, 1), 0, 10 + 30 + 4 + 1, 20 + 5 + 2 + 1],
        groups: [
          ["rewrite", "", 1, C, 0, 0, 0],
          ["chat", "m-large", 2, large(4, 2) + large(1, 1), 0, 5, 3],
          ["chat", "m-small", 2, small(10, 20) + small(30, 5), 0, 40, 25],
        ],
      },
      { date: "2026-01-16", totals: [1, small(100, 100), 0, 100, 100], groups: [["chat", "m-small", 1, small(100, 100), 0, 100, 100]] },
      // The refund: no generation, credits down, refunded up, no tokens.
      { date: "2026-01-18", totals: [0, -small(10, 20), small(10, 20), 0, 0], groups: [["chat", "m-small", 0, -small(10, 20), small(10, 20), 0, 0]] },
    ]);
    expect(s.groups).toEqual([
      ["rewrite", "", 1, C, 0, 0, 0],
      ["chat", "m-small", 3, small(30, 5) + small(100, 100), small(10, 20), 140, 125],
      ["chat", "m-large", 2, large(4, 2) + large(1, 1), 0, 5, 3],
    ]);
    const net = small(30, 5) + large(4, 2) + C + large(1, 1) + small(100, 100);
    expect(s.totals).toEqual([6, net, small(10, 20), 145, 128]);
    // What the account was charged, net of the refund, is what the summary says.
    expect((await h.ledger.balance(acct)).chargedMicros).toBe(net);

    // A sub-range: only its days.
    expect(plain(await h.summary(acct, "2026-01-16", "2026-01-17")).days.map((d) => d.date)).toEqual(["2026-01-16"]);
    expect(plain(await h.summary(acct, "2026-01-19", "2026-01-20"))).toEqual({ days: [], groups: [], totals: [0, 0, 0, 0, 0] });
  });

  it("empty dates: the 30 days before today (by the ledger's clock) through today", async () => {
    h.clock.set(Date.UTC(2026, 0, 1, 10));
    await h.chat(acct, "m-small", { input: 1, output: 1 });
    h.clock.set(Date.UTC(2026, 0, 31, 10));
    await h.chat(acct, "m-small", { input: 2, output: 2 });
    h.clock.set(Date.UTC(2026, 1, 1, 10));
    await h.chat(acct, "m-small", { input: 3, output: 3 });
    expect(plain(await h.summary(acct)).days.map((d) => d.date)).toEqual(["2026-01-31", "2026-02-01"]);
    h.clock.set(Date.UTC(2026, 0, 31, 10));
    expect(plain(await h.summary(acct)).days.map((d) => d.date)).toEqual(["2026-01-01", "2026-01-31"]);
    expect(plain(await h.summary(acct, "", "2026-01-30")).days.map((d) => d.date)).toEqual(["2026-01-01"]);
  });

  it("operation and model names never mix, whatever characters they hold", async () => {
    // The catalog prices unknown model names as m-small: the proxy's names are kept as it sent them.
    const models = ["x", "3:x", "x/y", "a,b", "1:x0:", "модель-é", ""];
    for (const model of models) await h.chat(acct, model, { input: 1, output: 1 });
    // An empty operation prices by the model alone: "4:chat" as a model must not meet operation "chat", model "".
    await h.settle(await h.reserve(acct, { model: "4:chat0:", input: { case: "inputTokens", value: 1n } }), { outputTokens: 1n });
    const s = plain(await h.summary(acct, "2026-01-15", "2026-01-15"));
    expect(s.groups.map(([op, model, gens]) => [op, model, gens]).sort()).toEqual(
      [...models.map((m) => ["chat", m, 1]), ["", "4:chat0:", 1]].sort(),
    );
  });

  it("a refund of a hold, and a replayed Settle or Refund, change nothing in the summary", async () => {
    const id = await h.chat(acct, "m-small", { input: 1, output: 1 });
    const held = await h.reserve(acct, { operation: "chat", model: "m-small", input: { case: "inputTokens", value: 7n } });
    await h.refund(held, "upstream 500");
    const before = plain(await h.summary(acct, "2026-01-15", "2026-01-15"));
    await h.settle(id, { inputTokens: 1n, outputTokens: 1n });
    await h.refund(id, "once");
    await h.refund(id, "twice");
    const after = plain(await h.summary(acct, "2026-01-15", "2026-01-15"));
    expect(before.totals).toEqual([1, small(1, 1), 0, 1, 1]);
    expect(after.totals).toEqual([1, 0, small(1, 1), 1, 1]);
  });
});

describe("validation", () => {
  beforeEach(async () => {
    h = harness(env.redis);
    await h.grant(acct, 100);
    await h.chat(acct, "m-small", { input: 1, output: 1 });
  });

  it.each([
    ["account_id", { accountId: "" }],
    ["from_date", { fromDate: "2026-1-01" }],
    ["from_date", { fromDate: "2026-02-30", toDate: "2026-03-01" }],
    ["to_date", { toDate: "2026-13-01" }],
    ["to_date", { toDate: "1969-12-31" }],
    ["to_date", { toDate: "yesterday" }],
    ["from_date", { fromDate: "2026-01-16", toDate: "2026-01-15" }],
    ["from_date", { fromDate: "2025-01-01", toDate: "2026-02-05" }],
  ])("%s: INVALID_ARGUMENT naming it, nothing changed", async (field, req) => {
    const before = await snapshot(env.redis, h.prefix);
    const r = await rejection(h.usage.getUsageSummary(create(GetUsageSummaryRequestSchema, { accountId: acct, ...req }), ctx));
    expect(r.code).toBe(Code.InvalidArgument);
    expect(r.message.startsWith(`${field}: `)).toBe(true);
    expect(r.info).toMatchObject({ metadata: { field } });
    expect(await snapshot(env.redis, h.prefix)).toEqual(before);
  });

  it("400 days is the longest range", async () => {
    const s = await h.summary(acct, "2025-01-11", "2026-02-14");
    expect(s.days.map((d) => d.date)).toEqual(["2026-01-15"]);
  });
});

describe("retention of the aggregates", () => {
  it("keeps CREDITD_USAGE_SUMMARY_DAYS days: older days go when a new day starts, with all their fields", async () => {
    h = harness(env.redis, { usageSummaryDays: 3 });
    await h.grant(acct, 10_000);
    const day = (d: number) => Date.UTC(2026, 0, 10 + d, 12);
    for (let d = 0; d < 6; d++) {
      h.clock.set(day(d));
      await h.chat(acct, "m-small", { input: 1, output: 1 });
      await h.chat(acct, `model-${d}`, { input: 1, output: 1 });
    }
    // Today is Jan 15: Jan 13, 14, 15 are kept.
    const s = plain(await h.summary(acct, "2026-01-01", "2026-01-31"));
    expect(s.days.map((d) => d.date)).toEqual(["2026-01-13", "2026-01-14", "2026-01-15"]);
    const fields = Object.keys(await env.redis.hgetall(h.ledger.keys.account(acct).usage)).sort();
    expect(fields).toEqual(
      [
        "days",
        ...[13, 14, 15].flatMap((d) => [`2026-01-${d}`, `2026-01-${d}/4:chat7:m-small`, `2026-01-${d}/4:chat7:model-${d - 10}`]),
      ].sort(),
    );
    expect(await env.redis.hget(h.ledger.keys.account(acct).usage, "days")).toBe("2026-01-13,2026-01-14,2026-01-15");

    // An account idle for a long time drops everything old on its next day.
    h.clock.set(day(300));
    await h.chat(acct, "m-small", { input: 1, output: 1 });
    expect(Object.keys(await env.redis.hgetall(h.ledger.keys.account(acct).usage)).length).toBe(3);
  });

  it("0 keeps every day", async () => {
    h = harness(env.redis, { usageSummaryDays: 0 });
    await h.grant(acct, 10_000);
    for (let d = 0; d < 5; d++) {
      h.clock.set(T0 + d * 90 * DAY + HOUR);
      await h.chat(acct, "m-small", { input: 1, output: 1 });
    }
    expect(plain(await h.summary(acct, "2026-01-15", "2027-01-10")).days).toHaveLength(5);
  });
});

describe("on Redis Cluster", () => {
  it("charges, refunds, the summary, ListUsage and ExportUsage keep to the account's hash slot", async () => {
    const cluster = await startTestCluster();
    const client = new Cluster(cluster.nodes);
    try {
      h = harness(client, { ledgerRetentionMs: DAY, usageSummaryDays: 2 });
      await h.grant(acct, 100);
      const id = await h.chat(acct, "m-small", { input: 1, output: 1 }, { memberId: "ann" });
      h.clock.advance(2 * DAY);
      await h.refund(id, "support");
      expect((await h.summary(acct, "2026-01-15", "2026-01-17")).totals).toMatchObject({
        generations: 0n,
        refundedMicros: BigInt(small(1, 1)),
      });
      expect((await h.list(acct)).records.map((r) => r.kind)).toHaveLength(2);
      expect((await h.exportText({ accountId: acct, format: ExportFormat.JSONL })).split("\n")).toHaveLength(3);
    } finally {
      client.disconnect();
      await cluster.stop();
    }
  });
});
