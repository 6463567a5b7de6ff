// ListUsage through real priced Reserve/Settle/Refund (service handlers, real Pricer, ManualClock ledger).
import { create } from "@bufbuild/protobuf";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ReserveRequestSchema, SettleRequestSchema } from "../../src/gen/creditd/v1/credit_service_pb.js";
import { UsageKind, type UsageRecord } from "../../src/gen/creditd/v1/usage_service_pb.js";
import { ListUsageRequestSchema } from "../../src/gen/creditd/v1/usage_service_pb.js";
import { DAY, HOUR, MINUTE, snapshot } from "../support/ledger.js";
import { useTestRedis } from "../support/redis.js";
import { rejection } from "../support/rejection.js";
import { C, T0, type Harness, ctx, harness } from "./harness.js";

const env = useTestRedis();
let h: Harness;
const acct = "acme";

beforeEach(async () => {
  h = harness(env.redis);
  await h.grant(acct, 10_000);
});
afterEach(() => h.close());

const ms = (r: UsageRecord) => (r.time ? timestampMs(r.time) : 0);

describe("records", () => {
  it("a charge names the member, operation and model, with the quantities charged and the receipt", async () => {
    const id = await h.chat(acct, "m-large", { input: 120, output: 40, cached: 20, reasoning: 10 }, { memberId: "ann", requestId: "chat-1" });
    const { records, nextPageToken } = await h.list(acct);
    expect(nextPageToken).toBe("");
    expect(records).toHaveLength(1);
    const r = records[0]!;
    // 100 input at 10,000 + 20 cached (cached price = input price) + 30 output at 30,000 + 10 reasoning at 30,000.
    const charged = 120n * 10_000n + 40n * 30_000n;
    expect(r).toMatchObject({
      kind: UsageKind.CHARGE,
      reservationId: id,
      requestId: "chat-1",
      memberId: "ann",
      operation: "chat",
      model: "m-large",
      creditsMicros: charged,
      // Held: 120 input + 100 output (the cap) at m-large's prices.
      releasedMicros: 120n * 10_000n + 100n * 30_000n - charged,
      uncoveredMicros: 0n,
      holdExpired: false,
      reason: "",
    });
    expect(id).toBe(`${acct}:chat-1`);
    expect(ms(r)).toBe(T0);
    expect(r.quantities).toMatchObject({
      inputTokens: 120n,
      cachedInputTokens: 20n,
      outputTokens: 40n,
      reasoningTokens: 10n,
      images: 0,
      videoSeconds: 0,
      units: 0n,
    });
    expect(r.receipt?.totalMicros).toBe(charged);
    expect(r.receipt?.items.map((i) => i.quantity)).toEqual([1n, 100n, 20n, 30n, 10n]);
  });

  it("images produced are the quantity charged (3 of 4); a fixed-price operation has no model", async () => {
    const img = await h.reserve(acct, { operation: "image.generate", image: { width: 1024, height: 1024, count: 4 } });
    await h.settle(img, { images: 3 });
    h.clock.advance(MINUTE);
    const rw = await h.reserve(acct, { operation: "rewrite" });
    await h.settle(rw, {});
    const { records } = await h.list(acct);
    expect(records.map((r) => [r.operation, r.model, r.creditsMicros, r.quantities?.images])).toEqual([
      ["rewrite", "", 1n * BigInt(C), 0],
      ["image.generate", "", 6n * BigInt(C), 3],
    ]);
  });

  it("a reservation made with amount_micros and settled with charge_micros: no operation, model or quantities", async () => {
    await h.credit.reserve(
      create(ReserveRequestSchema, { accountId: acct, requestId: "plain", cost: { case: "amountMicros", value: 5n * BigInt(C) } }),
      ctx,
    );
    await h.credit.settle(create(SettleRequestSchema, { reservationId: `${acct}:plain`, cost: { case: "chargeMicros", value: 3n * BigInt(C) } }), ctx);
    const [r] = (await h.list(acct)).records;
    expect(r).toMatchObject({ kind: UsageKind.CHARGE, operation: "", model: "", creditsMicros: 3n * BigInt(C), releasedMicros: 2n * BigInt(C) });
    expect(r?.quantities).toBeUndefined();
    expect(r?.receipt).toBeUndefined();
  });

  it("a refund of a settled generation is a REFUND record naming it; a refund of a hold is not usage", async () => {
    const settled = await h.chat(acct, "m-small", { input: 10, output: 20 }, { memberId: "bo" });
    h.clock.advance(HOUR);
    await h.refund(settled, "broken output, \"sorry\"");
    const held = await h.reserve(acct, { operation: "chat", model: "m-small", input: { case: "inputTokens", value: 5n } });
    await h.refund(held, "upstream 500");
    const { records } = await h.list(acct);
    expect(records.map((r) => r.kind)).toEqual([UsageKind.REFUND, UsageKind.CHARGE]);
    expect(records[0]).toMatchObject({
      reservationId: settled,
      memberId: "bo",
      operation: "chat",
      model: "m-small",
      creditsMicros: 10n * 1000n + 20n * 2000n,
      reason: "broken output, \"sorry\"",
      releasedMicros: 0n,
    });
    expect(ms(records[0]!)).toBe(T0 + HOUR);
    expect(records[0]?.quantities).toBeUndefined();
  });

  it("a Settle after the hold's deadline is a charge that says so", async () => {
    const id = await h.reserve(acct, { operation: "chat", model: "m-small", input: { case: "inputTokens", value: 10n } }, {});
    h.clock.advance(DAY);
    await h.settle(id, { outputTokens: 5n });
    const [r] = (await h.list(acct)).records;
    expect(r).toMatchObject({ holdExpired: true, releasedMicros: 0n, creditsMicros: 10n * 1000n + 5n * 2000n });
  });
});

describe("filters and range", () => {
  beforeEach(async () => {
    // Hour by hour: ann/m-small, bo/m-large, ann/m-large, bo/m-small, and a rewrite by ann.
    const plan: Array<[string, string]> = [["ann", "m-small"], ["bo", "m-large"], ["ann", "m-large"], ["bo", "m-small"]];
    for (const [member, model] of plan) {
      await h.chat(acct, model, { input: 10, output: 10 }, { memberId: member });
      h.clock.advance(HOUR);
    }
    await h.settle(await h.reserve(acct, { operation: "rewrite" }, { memberId: "ann" }), {});
  });

  const names = (records: UsageRecord[]) => records.map((r) => `${r.memberId}/${r.operation}/${r.model}`);

  it("newest first, each filter exact, and together", async () => {
    expect(names((await h.list(acct)).records)).toEqual([
      "ann/rewrite/", "bo/chat/m-small", "ann/chat/m-large", "bo/chat/m-large", "ann/chat/m-small",
    ]);
    expect(names((await h.list(acct, { filter: { memberId: "ann" } })).records)).toEqual([
      "ann/rewrite/", "ann/chat/m-large", "ann/chat/m-small",
    ]);
    expect(names((await h.list(acct, { filter: { model: "m-large" } })).records)).toEqual(["ann/chat/m-large", "bo/chat/m-large"]);
    expect(names((await h.list(acct, { filter: { operation: "rewrite" } })).records)).toEqual(["ann/rewrite/"]);
    expect(names((await h.list(acct, { filter: { memberId: "bo", model: "m-small" } })).records)).toEqual(["bo/chat/m-small"]);
    expect((await h.list(acct, { filter: { model: "m-smal" } })).records).toEqual([]);
  });

  it("the time range is [from, to): from inclusive, to exclusive, by the time each record was written", async () => {
    const between = async (from: number, to: number) =>
      names((await h.list(acct, { filter: { from: timestampFromMs(from), to: timestampFromMs(to) } })).records);
    expect(await between(T0 + HOUR, T0 + 3 * HOUR)).toEqual(["ann/chat/m-large", "bo/chat/m-large"]);
    expect(await between(T0 + HOUR + 1, T0 + 3 * HOUR + 1)).toEqual(["bo/chat/m-small", "ann/chat/m-large"]);
    expect(await between(T0, T0 + 1)).toEqual(["ann/chat/m-small"]);
    expect(await between(T0 + 5 * HOUR, T0 + 6 * HOUR)).toEqual([]);
    expect(names((await h.list(acct, { filter: { from: timestampFromMs(T0 + 4 * HOUR) } })).records)).toEqual(["ann/rewrite/"]);
    expect(names((await h.list(acct, { filter: { to: timestampFromMs(T0 + 1) } })).records)).toEqual(["ann/chat/m-small"]);
  });

  it("another account's records are not listed", async () => {
    await h.grant("other", 100);
    await h.chat("other", "m-small", { input: 1, output: 1 });
    expect((await h.list(acct)).records).toHaveLength(5);
    expect(names((await h.list("other")).records)).toEqual(["/chat/m-small"]);
    expect((await h.list("nobody")).records).toEqual([]);
  });
});

describe("paging", () => {
  it("pages through a selective filter: each page scans a bounded number of entries, none is lost or repeated", async () => {
    // 1,200 generations, one second apart: every 100th on m-large (12 records among 2,400+ ledger entries).
    const expected: string[] = [];
    for (let i = 0; i < 1200; i++) {
      const large = i % 100 === 0;
      const id = await h.chat(acct, large ? "m-large" : "m-small", { input: 1 + (i % 7), output: 3 });
      if (large) expected.unshift(id);
      h.clock.advance(1000);
    }
    const { records, pages } = await h.listAll(acct, { filter: { model: "m-large" }, pageSize: 10 });
    expect(records.map((r) => r.reservationId)).toEqual(expected);
    // At most max(5 × 10, 1000) entries a page: about 500 generations, so about 5 of the 12 records, and short
    // pages that still say there is more.
    expect(pages.length).toBeGreaterThanOrEqual(3);
    expect(pages.every((p) => p.size <= 5)).toBe(true);
    expect(pages.slice(0, -1).every((p) => p.more)).toBe(true);

    // Without a filter, pages are full, newest first, and meet exactly.
    const all = await h.listAll(acct, { pageSize: 250 });
    expect(all.records).toHaveLength(1200);
    expect(all.pages.map((p) => p.size)).toEqual([250, 250, 250, 250, 200]);
    const times = all.records.map(ms);
    expect(times).toEqual([...times].sort((a, b) => b - a));
    expect(new Set(all.records.map((r) => r.reservationId)).size).toBe(1200);
    // page_size 0 takes 100.
    expect((await h.list(acct)).records).toHaveLength(100);
  }, 60_000);

  it("a page that ends exactly at the oldest record has no next page", async () => {
    for (let i = 0; i < 4; i++) await h.chat(acct, "m-small", { input: 1, output: 1 });
    const first = await h.list(acct, { pageSize: 2 });
    expect(first.records).toHaveLength(2);
    const second = await h.list(acct, { pageSize: 2, pageToken: first.nextPageToken });
    expect(second.records).toHaveLength(2);
    const third = second.nextPageToken ? await h.list(acct, { pageSize: 2, pageToken: second.nextPageToken }) : undefined;
    expect(third?.records ?? []).toEqual([]);
    expect(third?.nextPageToken ?? "").toBe("");
  });
});

describe("validation", () => {
  it.each([
    ["account_id", { accountId: "" }],
    ["account_id", { accountId: "has space" }],
    ["page_size", { pageSize: -1 }],
    ["page_size", { pageSize: 1001 }],
    ["filter.from", { filter: { from: timestampFromMs(T0), to: timestampFromMs(T0) } }],
    ["filter.from", { filter: { from: timestampFromMs(T0 + 1), to: timestampFromMs(T0) } }],
    ["filter.to", { filter: { to: { seconds: -5n, nanos: 0 } } }],
    ["filter.member_id", { filter: { memberId: "a|b" } }],
    ["filter.model", { filter: { model: "x".repeat(257) } }],
    ["filter.operation", { filter: { operation: "a\nb" } }],
    ["page_token", { pageToken: "not-a-token" }],
    ["page_token", { pageToken: Buffer.from("123-0.AAAAAAAAAAAAAAAA").toString("base64url") }],
  ])("%s: INVALID_ARGUMENT naming it, nothing changed", async (field, req) => {
    await h.chat(acct, "m-small", { input: 1, output: 1 });
    const before = await snapshot(env.redis, h.prefix);
    const r = await rejection(h.usage.listUsage(create(ListUsageRequestSchema, { accountId: acct, ...req }), ctx));
    expect(r.code).toBe(Code.InvalidArgument);
    expect(r.message.startsWith(`${field}: `)).toBe(true);
    expect(r.info).toMatchObject({ reason: "INVALID_FIELD", metadata: { field } });
    expect(await snapshot(env.redis, h.prefix)).toEqual(before);
  });

  it("a page token is bound to its account and filter", async () => {
    for (let i = 0; i < 3; i++) await h.chat(acct, "m-small", { input: 1, output: 1 }, { memberId: "ann" });
    const first = await h.list(acct, { pageSize: 1, filter: { memberId: "ann" } });
    expect(first.nextPageToken).not.toBe("");
    // The same filter (and another page size) goes on.
    const next = await h.list(acct, { pageSize: 5, filter: { memberId: "ann" }, pageToken: first.nextPageToken });
    expect(next.records).toHaveLength(2);
    for (const other of [
      h.list(acct, { pageSize: 1, pageToken: first.nextPageToken }),
      h.list(acct, { pageSize: 1, filter: { memberId: "bo" }, pageToken: first.nextPageToken }),
      h.list(acct, { pageSize: 1, filter: { memberId: "ann", to: timestampFromMs(T0 + DAY) }, pageToken: first.nextPageToken }),
      h.list("other", { pageSize: 1, filter: { memberId: "ann" }, pageToken: first.nextPageToken }),
    ]) {
      const r = await rejection(other);
      expect(r.code).toBe(Code.InvalidArgument);
      expect(r.message).toMatch(/^page_token: was issued for another account or filter/);
    }
  });

  it("a priced Reserve with an operation or model name too long to keep is refused before anything is held", async () => {
    const before = await snapshot(env.redis, h.prefix);
    const r = await rejection(h.reserve(acct, { operation: "chat", model: "m".repeat(257), input: { case: "inputTokens", value: 1n } }));
    expect(r.info).toMatchObject({ metadata: { field: "priced.model" } });
    expect(await snapshot(env.redis, h.prefix)).toEqual(before);
  });
});
