// Usage records as files: CSV (RFC 4180, a header row, CRLF line ends) or JSON Lines (each record's proto3 JSON).
// One chunk per ledger batch, always whole lines, so the RPC and the CLI stream them as they come and memory stays
// bounded by one batch whatever the range.
//
// CSV columns, in order (docs: README.md, "Usage history and export"):
//   time                 when the charge or refund was recorded, ISO 8601 UTC with milliseconds
//   kind                 charge | refund
//   reservation_id, request_id, member_id, operation, model
//   input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, images, video_seconds, units
//                        what was charged for; empty when the charge was given as an amount (charge_micros)
//   credits_micros       charged (charge) or given back (refund), an integer of micro-credits
//   credits              the same in credits, exact decimal ("0.05")
//   released_micros, uncovered_micros, hold_expired        of a charge (0 / false for a refund)
//   catalog_version      of a priced charge's receipt
//   reason               of a refund

import { toJsonString } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { type UsageRecord, UsageKind, UsageRecordSchema } from "../gen/creditd/v1/usage_service_pb.js";
import { formatCredits } from "../pricing/decimal.js";
import type { RecordFilter } from "./records.js";
import type { TimeRange, UsageReader } from "./reader.js";

export type ExportFormatName = "csv" | "jsonl";

export const CSV_COLUMNS = [
  "time", "kind", "reservation_id", "request_id", "member_id", "operation", "model",
  "input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens", "images", "video_seconds", "units",
  "credits_micros", "credits", "released_micros", "uncovered_micros", "hold_expired", "catalog_version", "reason",
] as const;

const CRLF = "\r\n";

/** RFC 4180: a field holding a comma, a quote, CR or LF is quoted, its quotes doubled. */
export function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

export function csvHeader(): string {
  return CSV_COLUMNS.join(",") + CRLF;
}

export function csvRow(r: UsageRecord): string {
  const q = r.quantities;
  const qty = (v: bigint | number | undefined): string => (q === undefined || v === undefined ? "" : String(v));
  const cells = [
    r.time ? new Date(timestampMs(r.time)).toISOString() : "",
    r.kind === UsageKind.CHARGE ? "charge" : "refund",
    r.reservationId,
    r.requestId,
    r.memberId,
    r.operation,
    r.model,
    qty(q?.inputTokens),
    qty(q?.cachedInputTokens),
    qty(q?.outputTokens),
    qty(q?.reasoningTokens),
    qty(q?.images),
    qty(q?.videoSeconds),
    qty(q?.units),
    r.creditsMicros.toString(),
    formatCredits(r.creditsMicros),
    r.releasedMicros.toString(),
    r.uncoveredMicros.toString(),
    r.holdExpired ? "true" : "false",
    r.receipt?.catalogVersion ?? "",
    r.reason,
  ];
  return cells.map(csvField).join(",") + CRLF;
}

export function jsonLine(r: UsageRecord): string {
  return toJsonString(UsageRecordSchema, r) + "\n";
}

/**
 * The export as text chunks of whole lines, oldest record first: the CSV header first (also for an empty export),
 * then one chunk per ledger batch that held records. Stops, without an error, once `signal` aborts.
 */
export async function* exportText(
  reader: UsageReader,
  accountId: string,
  range: TimeRange,
  filter: RecordFilter,
  format: ExportFormatName,
  opts: { signal?: AbortSignal | undefined; onRecords?: (count: number) => void } = {},
): AsyncGenerator<string> {
  if (format === "csv") yield csvHeader();
  const line = format === "csv" ? csvRow : jsonLine;
  for await (const records of reader.scan(accountId, range, filter, opts.signal)) {
    let text = "";
    for (const r of records) text += line(r);
    opts.onRecords?.(records.length);
    yield text;
    if (opts.signal?.aborted) return;
  }
}
