// ExportUsage (the handler, as both edges call it): CSV and JSON Lines content against ListUsage, validation, abort.
import { create, fromJsonString } from "@bufbuild/protobuf";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  ExportFormat,
  ExportUsageRequestSchema,
  type UsageRecord,
  UsageKind,
  UsageRecordSchema,
} from "../../src/gen/creditd/v1/usage_service_pb.js";
import { ReserveRequestSchema, SettleRequestSchema } from "../../src/gen/creditd/v1/credit_service_pb.js";
import { CSV_COLUMNS } from "../../src/usage/export.js";
import { HOUR } from "../support/ledger.js";
import { useTestRedis } from "../support/redis.js";
import { rejection } from "../support/rejection.js";
import { T0, type Harness, ctx, harness } from "./harness.js";

const env = useTestRedis();
let h: Harness;
const acct = "acme";

beforeEach(async () => {
  h = harness(env.redis);
  await h.grant(acct, 10_000);
  // Names a CSV must quote: a comma, a quote; and a refund reason with both.
  await h.chat(acct, 'gpt,"quoted"', { input: 11, output: 7, cached: 3 }, { memberId: "ann" });
  h.clock.advance(HOUR);
  const img = await h.reserve(acct, { operation: "image.generate", image: { width: 1024, height: 1024, count: 2 } }, { memberId: "bo" });
  await h.settle(img, { images: 1 });
  h.clock.advance(HOUR);
  const refunded = await h.chat(acct, "m-large", { input: 1, output: 1 });
  h.clock.advance(HOUR);
  await h.refund(refunded, 'it said "no", twice');
  await h.credit.reserve(
    create(ReserveRequestSchema, {
      accountId: acct,
      requestId: "plain",
      cost: { case: "amountMicros", value: 1_000_001n },
    }),
    ctx,
  );
  await h.credit.settle(
    create(SettleRequestSchema, {
      reservationId: `${acct}:plain`,
      cost: { case: "chargeMicros", value: 1_000_001n },
    }),
    ctx,
  );
});
afterEach(() => h.close());

/** A strict RFC 4180 reader (CRLF line ends, quoted fields with doubled quotes). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let i = 0;
  for (;;) {
    let value = "";
    if (text[i] === '"') {
      i++;
      for (;;) {
        const q = text.indexOf('"', i);
        if (q < 0) throw new Error("unterminated quoted field");
        value += text.slice(i, q);
        if (text[q + 1] === '"') {
          value += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
    } else {
      const end = text.slice(i).search(/[,\r]/);
      value = end < 0 ? text.slice(i) : text.slice(i, i + end);
      i += value.length;
      if (value.includes('"') || value.includes("\n")) throw new Error(`unquoted field with a quote or LF: ${value}`);
    }
    row.push(value);
    if (text[i] === ",") {
      i++;
      continue;
    }
    if (text.startsWith("\r\n", i)) {
      rows.push(row);
      row = [];
      i += 2;
      if (i === text.length) return rows;
      continue;
    }
    throw new Error(`expected , or CRLF at ${i}: ${JSON.stringify(text.slice(i, i + 20))}`);
  }
}

/** ListUsage's records oldest first: what an export holds. */
async function listed(filter: NonNullable<Parameters<Harness["list"]>[1]>["filter"] = {}): Promise<UsageRecord[]> {
  return (await h.listAll(acct, { filter, pageSize: 1000 })).records.reverse();
}

describe("CSV", () => {
  it("a header, then one row per record, oldest first, matching ListUsage field by field", async () => {
    const rows = parseCsv(await h.exportText({ accountId: acct, format: ExportFormat.CSV }));
    expect(rows[0]).toEqual([...CSV_COLUMNS]);
    const records = await listed();
    expect(records.map((r) => r.kind)).toEqual([UsageKind.CHARGE, UsageKind.CHARGE, UsageKind.CHARGE, UsageKind.REFUND, UsageKind.CHARGE]);
    expect(rows.length - 1).toBe(records.length);
    const col = (name: (typeof CSV_COLUMNS)[number]) => CSV_COLUMNS.indexOf(name);
    records.forEach((r, i) => {
      const row = rows[i + 1]!;
      const cell = (name: (typeof CSV_COLUMNS)[number]) => row[col(name)];
      expect(Date.parse(cell("time")!)).toBe(timestampMs(r.time!));
      expect(cell("kind")).toBe(r.kind === UsageKind.CHARGE ? "charge" : "refund");
      expect([cell("reservation_id"), cell("request_id"), cell("member_id"), cell("operation"), cell("model")]).toEqual([
        r.reservationId, r.requestId, r.memberId, r.operation, r.model,
      ]);
      const q = r.quantities;
      expect(
        ["input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens", "images", "video_seconds", "units"].map(
          (c) => cell(c as (typeof CSV_COLUMNS)[number]),
        ),
      ).toEqual(
        q
          ? [q.inputTokens, q.cachedInputTokens, q.outputTokens, q.reasoningTokens, q.images, q.videoSeconds, q.units].map(String)
          : ["", "", "", "", "", "", ""],
      );
      expect(BigInt(cell("credits_micros")!)).toBe(r.creditsMicros);
      expect([cell("released_micros"), cell("uncovered_micros"), cell("hold_expired")]).toEqual([
        String(r.releasedMicros), String(r.uncoveredMicros), String(r.holdExpired),
      ]);
      expect(cell("catalog_version")).toBe(r.receipt?.catalogVersion ?? "");
      expect(cell("reason")).toBe(r.reason);
    });
    // The quoted ones came back exactly.
    expect(rows[1]![col("model")]).toBe('gpt,"quoted"');
    expect(rows[4]![col("reason")]).toBe('it said "no", twice');
    // Credits as an exact decimal, next to the integer micros.
    expect(rows.slice(1).map((row) => [row[col("credits_micros")], row[col("credits")]])).toEqual([
      [String(11 * 1000 + 7 * 2000), "0.025"],
      ["2000000", "2"],
      ["40000", "0.04"],
      ["40000", "0.04"],
      ["1000001", "1.000001"],
    ]);
  });

  it("the same filters and range as ListUsage; an empty export is the header alone", async () => {
    const filter = { memberId: "bo" };
    const rows = parseCsv(await h.exportText({ accountId: acct, format: ExportFormat.CSV, filter }));
    expect(rows.slice(1).map((r) => r[CSV_COLUMNS.indexOf("request_id")])).toEqual((await listed(filter)).map((r) => r.requestId));
    const range = { from: timestampFromMs(T0 + HOUR), to: timestampFromMs(T0 + 3 * HOUR) };
    const ranged = parseCsv(await h.exportText({ accountId: acct, format: ExportFormat.CSV, filter: range }));
    expect(ranged.slice(1).map((r) => r[CSV_COLUMNS.indexOf("reservation_id")])).toEqual((await listed(range)).map((r) => r.reservationId));
    expect(ranged).toHaveLength(3);
    expect(await h.exportText({ accountId: "nobody", format: ExportFormat.CSV })).toBe(CSV_COLUMNS.join(",") + "\r\n");
  });
});

describe("JSON Lines", () => {
  it("one UsageRecord JSON per line, equal to ListUsage's records", async () => {
    const text = await h.exportText({ accountId: acct, format: ExportFormat.JSONL });
    expect(text.endsWith("\n")).toBe(true);
    const lines = text.slice(0, -1).split("\n");
    expect(lines.map((l) => fromJsonString(UsageRecordSchema, l))).toEqual(await listed());
    expect(JSON.parse(lines[0]!)).toMatchObject({ kind: "USAGE_KIND_CHARGE", operation: "chat", memberId: "ann" });
    expect(await h.exportText({ accountId: "nobody", format: ExportFormat.JSONL })).toBe("");
  });
});

describe("the call", () => {
  it.each([
    ["format", { accountId: acct }],
    ["format", { accountId: acct, format: 7 as ExportFormat }],
    ["account_id", { accountId: "", format: ExportFormat.CSV }],
    ["filter.from", { accountId: acct, format: ExportFormat.CSV, filter: { from: timestampFromMs(T0 + 1), to: timestampFromMs(T0) } }],
  ])("%s: INVALID_ARGUMENT naming it, before anything is sent", async (field, req) => {
    const it = h.usage.exportUsage(create(ExportUsageRequestSchema, req), ctx)[Symbol.asyncIterator]();
    const r = await rejection(it.next());
    expect(r.code).toBe(Code.InvalidArgument);
    expect(r.info).toMatchObject({ metadata: { field } });
  });

  it("stops reading the ledger once the call's signal aborts", async () => {
    for (let i = 0; i < 1500; i++) await h.chat(acct, "m-small", { input: 1, output: 1 });
    const abort = new AbortController();
    let chunks = 0;
    let bytes = 0;
    for await (const chunk of h.usage.exportUsage(create(ExportUsageRequestSchema, { accountId: acct, format: ExportFormat.JSONL }), {
      signal: abort.signal,
    })) {
      chunks++;
      bytes += chunk.data.length;
      abort.abort();
    }
    // One batch of 1,000 ledger entries was sent; the 2,000 others were never read.
    expect(chunks).toBe(1);
    expect(bytes).toBeGreaterThan(0);
    const all = await h.exportText({ accountId: acct, format: ExportFormat.JSONL });
    expect(all.split("\n").length - 1).toBe(1505);
    expect(bytes).toBeLessThan(all.length / 2);
  }, 30_000);
});
