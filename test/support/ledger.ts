import { Redis } from "ioredis";
import { ManualClock } from "../../src/ledger/clock.js";
import { Ledger, type SubscriptionTerms } from "../../src/ledger/ledger.js";
import type { BucketKindName } from "../../src/ledger/status.js";
import { uniquePrefix } from "./redis.js";

/** 1 credit in micros: tables read in credits, the ledger counts micros. */
export const C = 1_000_000;
export const T0 = Date.UTC(2026, 0, 15, 12, 0, 0);
export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

export interface TestLedger {
  ledger: Ledger;
  clock: ManualClock;
  redis: Redis;
  prefix: string;
}

/** A Ledger on a fresh key prefix with a clock the test moves by hand. */
export async function openLedger(redis: Redis, opts: { retentionMs?: number; maxLen?: number } = {}): Promise<TestLedger> {
  const clock = new ManualClock(T0);
  const prefix = uniquePrefix();
  const ledger = new Ledger(redis, {
    keyPrefix: prefix,
    retentionMs: opts.retentionMs ?? DAY,
    ledgerMaxEntries: opts.maxLen ?? 0,
    clock,
  });
  await ledger.loadScripts();
  return { ledger, clock, redis, prefix };
}

let grants = 0;

/** Grants `credits` of `kind` and returns the bucket id. */
export async function give(
  ledger: Ledger,
  accountId: string,
  credits: number,
  kind: BucketKindName,
  opts: { expiresAtMs?: number; priority?: number; grantId?: string } = {},
): Promise<string> {
  const r = await ledger.grant({
    accountId,
    grantId: opts.grantId ?? `g${++grants}`,
    amountMicros: Math.round(credits * C),
    kind,
    priority: opts.priority ?? 0,
    expiresAtMs: opts.expiresAtMs ?? 0,
  });
  if (r.status !== "granted") throw new Error(`grant failed: ${JSON.stringify(r)}`);
  return r.bucket.bucketId;
}

/** Every key under a prefix with its full content: equal snapshots mean nothing changed. */
export async function snapshot(redis: Redis, prefix: string): Promise<Record<string, unknown>> {
  const keys = (await redis.keys(`${prefix}:*`)).sort();
  const out: Record<string, unknown> = {};
  for (const key of keys) {
    const type = await redis.type(key);
    if (type === "hash") out[key] = await redis.hgetall(key);
    else if (type === "zset") out[key] = await redis.zrange(key, "0", "-1", "WITHSCORES");
    else if (type === "stream") out[key] = await redis.xrange(key, "-", "+");
    else if (type === "string") out[key] = await redis.get(key);
    else out[key] = type;
  }
  return out;
}

export async function expectConsistent(ledger: Ledger, accountId: string): Promise<void> {
  const report = await ledger.audit(accountId);
  if (!report.ok) throw new Error(`audit of ${accountId} failed: ${report.problems.join("; ")}`);
}

/** Subscription terms for ledger tests: a monthly 100-credit "base" plan warning at 20 % and 5 %, unless overridden. */
export function subscriptionTerms(over: Partial<SubscriptionTerms> = {}): SubscriptionTerms {
  return {
    planId: "base",
    period: "month",
    seats: 1,
    creditsMicros: 100 * C,
    creditsPerSeatMicros: 0,
    unlimited: false,
    memberCapMicros: 0,
    addons: [],
    status: "active",
    anchorMs: undefined,
    trialCreditsMicros: 0,
    trialMs: 0,
    warnAtPercent: [20, 5],
    ...over,
  };
}
