// Usage records read from the account's ledger stream: a charge is a `settle` entry, a refund of a charge is a
// `refund` entry whose reservation had been settled (`from` = s). Every other entry (holds, releases, grants,
// expiries, refunds of holds) is not usage. Filters are matched on the raw fields first, so a scan that skips most
// entries builds nothing for them.

import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type UsageQuantities,
  UsageQuantitiesSchema,
  type UsageRecord,
  UsageKind,
  UsageRecordSchema,
} from "../gen/creditd/v1/usage_service_pb.js";
import { reservationIdOf } from "../ledger/ledger.js";
import { parseReceiptJson } from "../service/receipt-json.js";
import { decodeQuantities } from "./quantities.js";

/** The longest operation or model name a priced Reserve may give: it is kept with the generation's usage records. */
export const MAX_USAGE_NAME_CHARS = 256;

/** Exact-match filters of UsageFilter, "" = any. */
export interface RecordFilter {
  memberId: string;
  operation: string;
  model: string;
}

/** One stream entry as ioredis returns it: [id, [field, value, field, value, ...]]. */
export type StreamEntry = [id: string, fields: string[]];

/** The entry's fields by name (a stream entry has a dozen fields at most: a scan beats building a Map). */
function field(fields: string[], name: string): string {
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === name) return fields[i + 1] as string;
  }
  return "";
}

/** Whether the entry is a usage record that passes the filter, without building it. */
export function isUsage(fields: string[], filter: RecordFilter): boolean {
  const op = fields[0] === "op" ? fields[1] : field(fields, "op");
  if (op !== "settle" && !(op === "refund" && field(fields, "from") === "s")) return false;
  if (filter.memberId !== "" && field(fields, "member") !== filter.memberId) return false;
  if (filter.operation !== "" && field(fields, "operation") !== filter.operation) return false;
  if (filter.model !== "" && field(fields, "model") !== filter.model) return false;
  return true;
}

/** The record of a usage entry (call isUsage first). */
export function toRecord(accountId: string, fields: string[]): UsageRecord {
  const f = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i] as string, fields[i + 1] as string);
  const get = (name: string): string => f.get(name) ?? "";
  const requestId = get("req");
  const charge = get("op") === "settle";
  const qty = charge ? decodeQuantities(get("qty")) : undefined;
  const receipt = get("receipt");
  return create(UsageRecordSchema, {
    kind: charge ? UsageKind.CHARGE : UsageKind.REFUND,
    time: timestampFromMs(Number(get("t"))),
    reservationId: reservationIdOf(accountId, requestId),
    requestId,
    memberId: get("member"),
    operation: get("operation"),
    model: get("model"),
    creditsMicros: BigInt(get("amt") || "0"),
    ...(qty ? { quantities: toQuantitiesMessage(qty) } : {}),
    ...(charge
      ? {
          releasedMicros: BigInt(get("released") || "0"),
          uncoveredMicros: BigInt(get("uncovered") || "0"),
          holdExpired: get("hold_expired") === "1",
          ...(receipt ? { receipt: parseReceiptJson(receipt) } : {}),
        }
      : { reason: get("reason") }),
  });
}

function toQuantitiesMessage(q: NonNullable<ReturnType<typeof decodeQuantities>>): UsageQuantities {
  return create(UsageQuantitiesSchema, {
    inputTokens: q.inputTokens,
    cachedInputTokens: q.cachedInputTokens,
    outputTokens: q.outputTokens,
    reasoningTokens: q.reasoningTokens,
    images: Number(q.images),
    videoSeconds: Number(q.videoSeconds),
    units: q.units,
  });
}
