// Reads usage from Redis: records from the account's ledger stream (by time, since its ids are the times its
// entries were recorded: `<ms>-<seq>`, see xadd in lua/includes/account.lua), and the per-day aggregates from
// its usage hash (lua/includes/usage.lua). Read-only, plain commands on one key each (no script): nothing here
// changes an account.

import type { UsageRecord } from "../gen/creditd/v1/usage_service_pb.js";
import type { Ledger } from "../ledger/ledger.js";
import { type RecordFilter, type StreamEntry, isUsage, toRecord } from "./records.js";

/** A time range of record ids, [fromMs, toMs); 0 = open on that side. */
export interface TimeRange {
  fromMs: number;
  toMs: number;
}

export interface UsagePage {
  records: UsageRecord[];
  /** The id of the last entry looked at, to continue below it; undefined when the range is exhausted. */
  continueAfter: string | undefined;
}

/** Entries read per XRANGE: a bounded reply (a settle entry with its receipt is about half a kilobyte). */
export const READ_BATCH = 1000;

export class UsageReader {
  constructor(private readonly ledger: Ledger) {}

  /**
   * One page, newest first: at most `pageSize` records, scanning at most `scanLimit` ledger entries, starting
   * below `before` (an entry id from a previous page) or at the range's end.
   */
  async page(
    accountId: string,
    range: TimeRange,
    filter: RecordFilter,
    opts: { pageSize: number; scanLimit: number; before?: string | undefined },
  ): Promise<UsagePage> {
    const key = this.ledger.keys.account(accountId).ledger;
    const start = range.fromMs > 0 ? String(range.fromMs) : "-";
    // An incomplete id as XREVRANGE's end means every sequence number of that millisecond.
    let end = opts.before !== undefined ? `(${opts.before}` : range.toMs > 0 ? String(range.toMs - 1) : "+";
    const records: UsageRecord[] = [];
    let scanned = 0;
    let last: string | undefined;
    while (scanned < opts.scanLimit) {
      // About twice what is still needed (half the entries of a plain ledger are holds), never past the limit.
      const count = Math.min(opts.scanLimit - scanned, READ_BATCH, Math.max(2 * (opts.pageSize - records.length), 100));
      const batch = (await this.ledger.redis.xrevrange(key, end, start, "COUNT", count)) as StreamEntry[];
      for (let i = 0; i < batch.length; i++) {
        const [id, fields] = batch[i]!;
        scanned++;
        last = id;
        if (!isUsage(fields, filter)) continue;
        records.push(toRecord(accountId, fields));
        if (records.length === opts.pageSize) {
          const exhausted = batch.length < count && i === batch.length - 1;
          return { records, continueAfter: exhausted ? undefined : id };
        }
      }
      if (batch.length < count) return { records, continueAfter: undefined };
      end = `(${last}`;
    }
    return { records, continueAfter: last };
  }

  /**
   * Every record of the range, oldest first, a batch at a time (one XRANGE each, so memory stays bounded however
   * long the range). The range's open end is fixed when the scan starts: entries written meanwhile are left out.
   */
  async *scan(
    accountId: string,
    range: TimeRange,
    filter: RecordFilter,
    signal?: AbortSignal,
  ): AsyncGenerator<UsageRecord[]> {
    const key = this.ledger.keys.account(accountId).ledger;
    let end = range.toMs > 0 ? String(range.toMs - 1) : undefined;
    if (end === undefined) {
      const newest = (await this.ledger.redis.xrevrange(key, "+", "-", "COUNT", 1)) as StreamEntry[];
      if (newest.length === 0) return;
      end = newest[0]![0];
    }
    let start = range.fromMs > 0 ? String(range.fromMs) : "-";
    for (;;) {
      if (signal?.aborted) return;
      const batch = (await this.ledger.redis.xrange(key, start, end, "COUNT", READ_BATCH)) as StreamEntry[];
      const records: UsageRecord[] = [];
      for (const [, fields] of batch) {
        if (isUsage(fields, filter)) records.push(toRecord(accountId, fields));
      }
      if (records.length > 0) yield records;
      if (batch.length < READ_BATCH) return;
      start = `(${batch[batch.length - 1]![0]}`;
    }
  }

  /**
   * The aggregates of the days from..to ("YYYY-MM-DD", inclusive): for each day that had usage, its groups'
   * totals. Two HMGETs of exactly the fields needed: the days' group lists, then those groups' totals.
   */
  async days(accountId: string, days: string[]): Promise<Array<{ date: string; groups: GroupTotals[] }>> {
    if (days.length === 0) return [];
    const key = this.ledger.keys.account(accountId).usage;
    const lists = await this.ledger.redis.hmget(key, ...days);
    const wanted: Array<{ date: string; group: { operation: string; model: string }; field: string }> = [];
    days.forEach((date, i) => {
      const list = lists[i];
      if (!list) return;
      for (const code of groupCodes(list)) wanted.push({ date, group: decodeGroup(code), field: `${date}/${code}` });
    });
    const values: Array<string | null> = [];
    for (let i = 0; i < wanted.length; i += READ_BATCH) {
      values.push(...(await this.ledger.redis.hmget(key, ...wanted.slice(i, i + READ_BATCH).map((w) => w.field))));
    }
    const out: Array<{ date: string; groups: GroupTotals[] }> = [];
    wanted.forEach((w, i) => {
      const value = values[i];
      if (!value) return;
      let day = out[out.length - 1];
      if (day?.date !== w.date) {
        day = { date: w.date, groups: [] };
        out.push(day);
      }
      day.groups.push({ ...w.group, totals: decodeTotals(value) });
    });
    return out;
  }
}

export interface Totals {
  generations: bigint;
  creditsMicros: bigint;
  refundedMicros: bigint;
  inputTokens: bigint;
  outputTokens: bigint;
}

export interface GroupTotals {
  operation: string;
  model: string;
  totals: Totals;
}

export function zeroTotals(): Totals {
  return { generations: 0n, creditsMicros: 0n, refundedMicros: 0n, inputTokens: 0n, outputTokens: 0n };
}

export function addTotals(into: Totals, t: Totals): void {
  into.generations += t.generations;
  into.creditsMicros += t.creditsMicros;
  into.refundedMicros += t.refundedMicros;
  into.inputTokens += t.inputTokens;
  into.outputTokens += t.outputTokens;
}

/** "generations,credits,refunded,input_tokens,output_tokens" */
function decodeTotals(value: string): Totals {
  const [g, c, r, i, o] = value.split(",").map((v) => BigInt(v || "0"));
  return { generations: g ?? 0n, creditsMicros: c ?? 0n, refundedMicros: r ?? 0n, inputTokens: i ?? 0n, outputTokens: o ?? 0n };
}

/**
 * Reads one `<length>:<text>` at byte `pos`. Lengths are Lua's, in bytes: proto strings are valid UTF-8, so the
 * bytes Redis holds are the UTF-8 of the JavaScript strings, and the list is walked as bytes.
 */
function readLengthPrefixed(s: Buffer, pos: number): { text: string; next: number } | undefined {
  const colon = s.indexOf(0x3a, pos);
  if (colon < 0) return undefined;
  const digits = s.toString("latin1", pos, colon);
  if (!/^\d+$/.test(digits)) return undefined;
  const next = colon + 1 + Number(digits);
  if (next > s.length) return undefined;
  return { text: s.toString("utf8", colon + 1, next), next };
}

/** The group codes of a day's list: each an operation and a model, `<length>:<text>` each (lengths in bytes). */
export function groupCodes(list: string): string[] {
  const bytes = Buffer.from(list, "utf8");
  const codes: string[] = [];
  let pos = 0;
  while (pos < bytes.length) {
    const op = readLengthPrefixed(bytes, pos);
    const model = op && readLengthPrefixed(bytes, op.next);
    if (!model) break;
    codes.push(bytes.toString("utf8", pos, model.next));
    pos = model.next;
  }
  return codes;
}

export function decodeGroup(code: string): { operation: string; model: string } {
  const bytes = Buffer.from(code, "utf8");
  const op = readLengthPrefixed(bytes, 0);
  const model = op && readLengthPrefixed(bytes, op.next);
  return { operation: op?.text ?? "", model: model?.text ?? "" };
}
