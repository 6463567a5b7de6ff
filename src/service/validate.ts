import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { ACCOUNT_ID_PATTERN, IDEMPOTENCY_KEY_PATTERN } from "../ledger/keys.js";
import { parseReservationId } from "../ledger/ledger.js";
import { MAX_MICROS } from "../ledger/status.js";
import { invalidField } from "./errors.js";

/**
 * Input checks, one function per kind of field. Each throws INVALID_ARGUMENT naming the field before anything
 * reaches Redis, so bad input never changes anything. The scripts trust what passes here.
 */

const ACCOUNT_RULE = "must be 1-128 characters of A-Z a-z 0-9 . _ -";
const KEY_RULE = "must be 1-128 printable ASCII characters without spaces, braces or |";

export function accountId(field: string, value: string): string {
  if (value === "") throw invalidField(field, "required");
  if (!ACCOUNT_ID_PATTERN.test(value)) throw invalidField(field, ACCOUNT_RULE);
  return value;
}

export function idempotencyKey(field: string, value: string): string {
  if (value === "") throw invalidField(field, "required");
  if (!IDEMPOTENCY_KEY_PATTERN.test(value)) throw invalidField(field, KEY_RULE);
  return value;
}

export function reservationId(field: string, value: string): { accountId: string; requestId: string } {
  if (value === "") throw invalidField(field, "required");
  const parsed = parseReservationId(value);
  if (!parsed || !ACCOUNT_ID_PATTERN.test(parsed.accountId) || !IDEMPOTENCY_KEY_PATTERN.test(parsed.requestId)) {
    throw invalidField(field, "malformed: expected <account_id>:<request_id> as returned by Reserve");
  }
  return parsed;
}

/** An amount in micros: int64 on the wire, but at most 2^53 - 1 because Lua keeps numbers as doubles. */
export function micros(field: string, value: bigint | undefined, opts: { allowZero: boolean }): number {
  if (value === undefined) throw invalidField(field, "required");
  if (opts.allowZero ? value < 0n : value <= 0n) {
    throw invalidField(field, opts.allowZero ? "must be ≥ 0" : "must be > 0");
  }
  if (value > BigInt(MAX_MICROS)) throw invalidField(field, `must be at most ${MAX_MICROS}`);
  return Number(value);
}

export function intInRange(field: string, value: number, min: number, max: number, note = ""): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw invalidField(field, `must be between ${min} and ${max}${note}`);
  }
  return value;
}

export function text(field: string, value: string, maxChars: number): string {
  if ([...value].length > maxChars) throw invalidField(field, `must be at most ${maxChars} characters`);
  // Control characters would corrupt log lines and CSV exports of the ledger.
  if (/[\u0000-\u001f\u007f]/.test(value)) throw invalidField(field, "must not contain control characters");
  return value;
}

/** An optional point in time: unset is 0 ("never"); set must be a valid Timestamp, kept to the millisecond. */
export function optionalTime(field: string, value: Timestamp | undefined): number {
  if (value === undefined) return 0;
  const { seconds, nanos } = value;
  // Timestamp's own valid range is years 1-9999; creditd has no use for times before the epoch.
  if (seconds < 0n || seconds > 253402300799n || nanos < 0 || nanos > 999_999_999) {
    throw invalidField(field, "must be a valid time after 1970-01-01T00:00:00Z");
  }
  const ms = Number(seconds) * 1000 + Math.ceil(nanos / 1_000_000);
  if (ms === 0) throw invalidField(field, "must be after 1970-01-01T00:00:00Z (leave it unset for never)");
  return ms;
}
