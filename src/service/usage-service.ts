import { createHash } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import {
  ExportFormat,
  ExportUsageResponseSchema,
  GetUsageSummaryResponseSchema,
  ListUsageResponseSchema,
  type UsageFilter,
  type UsageGroup,
  UsageGroupSchema,
  type UsageService,
  type UsageTotals,
  UsageTotalsSchema,
} from "../gen/creditd/v1/usage_service_pb.js";
import type { Ledger } from "../ledger/ledger.js";
import type { ServiceHandlers } from "../rpc/types.js";
import { type ExportFormatName, exportText } from "../usage/export.js";
import { type GroupTotals, type TimeRange, type Totals, UsageReader, addTotals, zeroTotals } from "../usage/reader.js";
import { MAX_USAGE_NAME_CHARS, type RecordFilter } from "../usage/records.js";
import { invalidField } from "./errors.js";
import * as v from "./validate.js";

export interface UsageServiceOptions {
  ledger: Ledger;
}

/** ListUsage's page_size: 0 takes the default. */
export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;
/**
 * Ledger entries one ListUsage call looks at, at most: a selective filter over a long ledger answers a short (or
 * empty) page with a next_page_token instead of scanning everything in one call.
 */
export function scanLimit(pageSize: number): number {
  return Math.max(5 * pageSize, 1000);
}
/** GetUsageSummary spans at most this many days (a year and a bit: year-over-year charts fit). */
export const MAX_SUMMARY_DAYS = 400;
/** The default range when from_date is empty: 30 days before to_date. */
const DEFAULT_SUMMARY_SPAN_DAYS = 30;
const DAY_MS = 86_400_000;

/**
 * What an account spent: its usage records (from the ledger stream), per-day aggregates (from the usage hash the
 * Settle and Refund scripts keep) and exports. Read-only: validation first, then plain reads of one account's keys.
 */
export function usageService(opts: UsageServiceOptions): ServiceHandlers<typeof UsageService> {
  const { ledger } = opts;
  const reader = new UsageReader(ledger);
  const encoder = new TextEncoder();

  return {
    async listUsage(req) {
      const accountId = v.accountId("account_id", req.accountId);
      const { range, filter } = usageFilter(req.filter);
      const pageSize = v.intInRange("page_size", req.pageSize, 0, MAX_PAGE_SIZE, ` (0 takes ${DEFAULT_PAGE_SIZE})`) || DEFAULT_PAGE_SIZE;
      const binding = filterBinding(accountId, range, filter);
      const before = req.pageToken === "" ? undefined : pageTokenId(req.pageToken, binding);
      const page = await reader.page(accountId, range, filter, { pageSize, scanLimit: scanLimit(pageSize), before });
      return create(ListUsageResponseSchema, {
        records: page.records,
        nextPageToken: page.continueAfter === undefined ? "" : pageToken(page.continueAfter, binding),
      });
    },

    async getUsageSummary(req) {
      const accountId = v.accountId("account_id", req.accountId);
      const to = req.toDate === "" ? Math.floor(ledger.nowMs() / DAY_MS) : dayNumber("to_date", req.toDate);
      const from = req.fromDate === "" ? to - DEFAULT_SUMMARY_SPAN_DAYS : dayNumber("from_date", req.fromDate);
      if (from > to) throw invalidField("from_date", `must not be after to_date (${formatDay(to)})`);
      if (to - from + 1 > MAX_SUMMARY_DAYS) {
        throw invalidField("from_date", `the range may span at most ${MAX_SUMMARY_DAYS} days (to_date is ${formatDay(to)})`);
      }
      const dates: string[] = [];
      for (let d = Math.max(from, 0); d <= to; d++) dates.push(formatDay(d));
      const days = await reader.days(accountId, dates);

      const total = zeroTotals();
      const overall = new Map<string, GroupTotals>();
      const outDays = days.map((day) => {
        const dayTotal = zeroTotals();
        for (const g of day.groups) {
          addTotals(dayTotal, g.totals);
          const key = JSON.stringify([g.operation, g.model]);
          let sum = overall.get(key);
          if (!sum) {
            sum = { operation: g.operation, model: g.model, totals: zeroTotals() };
            overall.set(key, sum);
          }
          addTotals(sum.totals, g.totals);
        }
        addTotals(total, dayTotal);
        return { date: day.date, totals: toTotals(dayTotal), groups: toGroups(day.groups) };
      });
      return create(GetUsageSummaryResponseSchema, {
        days: outDays,
        groups: toGroups([...overall.values()]),
        totals: toTotals(total),
      });
    },

    async *exportUsage(req, ctx) {
      const accountId = v.accountId("account_id", req.accountId);
      const { range, filter } = usageFilter(req.filter);
      const format = exportFormat(req.format);
      for await (const text of exportText(reader, accountId, range, filter, format, { signal: ctx.signal })) {
        // When the client has gone, the edge ends the call with the signal's reason: nothing more to send.
        if (ctx.signal.aborted) return;
        yield create(ExportUsageResponseSchema, { data: encoder.encode(text) });
      }
    },
  };
}

function exportFormat(format: ExportFormat): ExportFormatName {
  if (format === ExportFormat.CSV) return "csv";
  if (format === ExportFormat.JSONL) return "jsonl";
  throw invalidField("format", "required: EXPORT_FORMAT_CSV or EXPORT_FORMAT_JSONL");
}

/** The filter's time range (ids of the ledger stream) and exact-match fields, validated. */
export function usageFilter(f: UsageFilter | undefined): { range: TimeRange; filter: RecordFilter } {
  const fromMs = v.optionalTime("filter.from", f?.from);
  const toMs = v.optionalTime("filter.to", f?.to);
  if (fromMs > 0 && toMs > 0 && fromMs >= toMs) throw invalidField("filter.from", "must be before filter.to");
  const memberId = f?.memberId ? v.accountId("filter.member_id", f.memberId) : "";
  const operation = v.text("filter.operation", f?.operation ?? "", MAX_USAGE_NAME_CHARS);
  const model = v.text("filter.model", f?.model ?? "", MAX_USAGE_NAME_CHARS);
  return { range: { fromMs, toMs }, filter: { memberId, operation, model } };
}

// ─── Page tokens ────────────────────────────────────────────────────────────────────────────────
// A token is the ledger id to continue below, with a digest of the account and filter it was issued for: it stays
// opaque to clients (base64url), and a token sent with another filter is refused rather than silently mixing two
// listings. page_size may change between pages.

const TOKEN_PATTERN = /^(\d{1,20}-\d{1,20})\.([A-Za-z0-9_-]{16})$/;

function filterBinding(accountId: string, range: TimeRange, filter: RecordFilter): string {
  const canonical = JSON.stringify([accountId, range.fromMs, range.toMs, filter.memberId, filter.operation, filter.model]);
  return createHash("sha256").update(canonical).digest("base64url").slice(0, 16);
}

function pageToken(id: string, binding: string): string {
  return Buffer.from(`${id}.${binding}`).toString("base64url");
}

function pageTokenId(token: string, binding: string): string {
  const match = /^[A-Za-z0-9_-]{1,200}$/.test(token) ? TOKEN_PATTERN.exec(Buffer.from(token, "base64url").toString("latin1")) : null;
  if (!match) throw invalidField("page_token", "not a next_page_token of ListUsage");
  if (match[2] !== binding) {
    throw invalidField("page_token", "was issued for another account or filter: send the first page's filter with it");
  }
  return match[1]!;
}

// ─── Summary ────────────────────────────────────────────────────────────────────────────────────

/** "YYYY-MM-DD" (a real UTC date, 1970 or later) → days since 1970-01-01. */
export function dayNumber(field: string, text: string): number {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  const ms = m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : NaN;
  // Date.UTC rolls over (Feb 30 → Mar 2): a real date formats back to itself.
  if (!m || Number.isNaN(ms) || ms < 0 || formatDay(ms / DAY_MS) !== text) {
    throw invalidField(field, "must be a date as YYYY-MM-DD (UTC), 1970-01-01 or later");
  }
  return ms / DAY_MS;
}

export function formatDay(day: number): string {
  return new Date(day * DAY_MS).toISOString().slice(0, 10);
}

function toTotals(t: Totals): UsageTotals {
  return create(UsageTotalsSchema, t);
}

/** Most credits first; ties by operation, then model, so equal days list the same way every time. */
function toGroups(groups: GroupTotals[]): UsageGroup[] {
  return [...groups]
    .sort(
      (a, b) =>
        (a.totals.creditsMicros === b.totals.creditsMicros ? 0 : a.totals.creditsMicros > b.totals.creditsMicros ? -1 : 1) ||
        (a.operation < b.operation ? -1 : a.operation > b.operation ? 1 : 0) ||
        (a.model < b.model ? -1 : a.model > b.model ? 1 : 0),
    )
    .map((g) => create(UsageGroupSchema, { operation: g.operation, model: g.model, totals: toTotals(g.totals) }));
}
