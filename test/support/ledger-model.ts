// A reference model of the ledger (TigerBeetle's auditor idea): the same operations as `Ledger`, in plain
// TypeScript over in-memory maps, returning the same result shapes. The randomized test runs every command on both
// and demands identical replies. It is written for obviousness, not speed; nothing here is imported from the Lua.
//
// One deliberate mirror of the scripts: a script that refuses (or only replays) writes nothing, so the model
// snapshots the account before the touch of a reserve and restores it when the reserve is refused. Because a touch
// is lazy and idempotent, this keeps the model's stored state equal to Redis's (audit() reads it without a touch).

import type {
  AuditReport, Balance, BucketState, Draw, GrantInput, GrantResult, RefundResult, ReserveResult, SettleResult,
} from "../../src/ledger/ledger.js";
import type { BucketKindName } from "../../src/ledger/status.js";

export interface ModelClock {
  nowMs(): number;
}

/** The kinds' default draw priorities, written out again so a wrong default in src/ shows up as a mismatch. */
export const MODEL_DEFAULT_PRIORITY: Record<BucketKindName, number> = {
  allowance: 100,
  addon: 200,
  trial: 300,
  promo: 300,
  adjustment: 300,
  topup: 400,
};

const MAX_MICROS = Number.MAX_SAFE_INTEGER;

type Held = Extract<ReserveResult, { heldFrom: Draw[] }>;
type Settled = Extract<SettleResult, { chargedFrom: Draw[] }>;
type Refunded = Extract<RefundResult, { refundedMicros: number }>;
type Granted = Extract<GrantResult, { bucket: BucketState }>;

interface Bucket {
  n: number;
  kind: BucketKindName;
  remaining: number;
  granted: number;
  priority: number;
  /** 0 = never. */
  expiresAtMs: number;
  createdAtMs: number;
  grantId: string;
}

interface Hold {
  deadline: number;
  amount: number;
  draws: Draw[];
}

/** The part of an account a touch changes: what a refused reserve must leave as it was. */
interface Core {
  nb: number;
  granted: number;
  held: number;
  charged: number;
  expired: number;
  /** Live buckets by id ("b<N>"). */
  buckets: Map<string, Bucket>;
  /** Live holds by request id (the holds sorted set). */
  holds: Map<string, Hold>;
}

interface Reservation {
  amount: number;
  draws: Draw[];
  /** Recorded state: a hold that runs out stays "held" here until a settle or refund closes it. */
  state: "held" | "settled" | "refunded" | "expired";
  reserveReply: Held;
  settle?: { charge: number; charged: number; chargedFrom: Draw[]; reply: Settled };
  refundReply?: Refunded;
}

interface GrantRecord {
  amount: number;
  kind: BucketKindName;
  priority: number;
  expiresAtMs: number;
  reply: Granted;
}

interface Account {
  core: Core;
  reservations: Map<string, Reservation>;
  grants: Map<string, GrantRecord>;
}

/** State shared by every model ledger of one key prefix: the accounts and the global request id claims. */
export class ModelWorld {
  readonly accounts = new Map<string, Account>();
  /** request id -> the account that claimed it (by a reserve that was not refused, or replays one). */
  readonly claims = new Map<string, string>();

  account(accountId: string): Account {
    let a = this.accounts.get(accountId);
    if (!a) {
      a = {
        core: { nb: 0, granted: 0, held: 0, charged: 0, expired: 0, buckets: new Map(), holds: new Map() },
        reservations: new Map(),
        grants: new Map(),
      };
      this.accounts.set(accountId, a);
    }
    return a;
  }
}

/** One model ledger: a clock over a (possibly shared) world, like a `Ledger` over a Redis. */
export class LedgerModel {
  constructor(
    private readonly clock: ModelClock,
    readonly world: ModelWorld = new ModelWorld(),
  ) {}

  grant(input: GrantInput): GrantResult {
    const { accountId, grantId, amountMicros: amount, kind, expiresAtMs } = input;
    const priority = input.priority || MODEL_DEFAULT_PRIORITY[kind];
    const a = this.world.account(accountId);
    const seen = a.grants.get(grantId);
    if (seen) {
      if (seen.amount !== amount || seen.kind !== kind || seen.priority !== priority || seen.expiresAtMs !== expiresAtMs) {
        return {
          status: "grant_conflict",
          first: { amountMicros: seen.amount, kind: seen.kind, priority: seen.priority, expiresAtMs: seen.expiresAtMs },
        };
      }
      return { ...copy(seen.reply), status: "replayed" };
    }
    const now = this.clock.nowMs();
    if (expiresAtMs !== 0 && expiresAtMs <= now) return { status: "expires_in_past", nowMs: now };
    const c = a.core;
    if (c.granted + amount > MAX_MICROS) return { status: "overflow", headroomMicros: MAX_MICROS - c.granted };
    touch(c, now);
    c.nb += 1;
    c.granted += amount;
    const bucket: Bucket = {
      n: c.nb, kind, remaining: amount, granted: amount, priority, expiresAtMs, createdAtMs: now, grantId,
    };
    c.buckets.set(`b${c.nb}`, bucket);
    const reply: Granted = {
      status: "granted",
      bucket: bucketState(bucket),
      availableMicros: available(c),
    };
    a.grants.set(grantId, { amount, kind, priority, expiresAtMs, reply: copy(reply) });
    return reply;
  }

  reserve(input: { accountId: string; requestId: string; amountMicros: number; ttlMs: number }): ReserveResult {
    const { accountId, requestId, amountMicros: amount, ttlMs } = input;
    const owner = this.world.claims.get(requestId);
    if (owner === undefined) this.world.claims.set(requestId, accountId);
    else if (owner !== accountId) return { status: "request_id_taken", otherAccountId: owner };
    const claimedNow = owner === undefined;

    const a = this.world.account(accountId);
    const seen = a.reservations.get(requestId);
    if (seen) {
      if (seen.amount !== amount) return { status: "amount_conflict", firstAmountMicros: seen.amount };
      return { ...copy(seen.reserveReply), status: "replayed", warnings: [] };
    }
    const now = this.clock.nowMs();
    const before = cloneCore(a.core);
    touch(a.core, now);
    const avail = available(a.core);
    if (avail < amount) {
      a.core = before; // a refusal changes nothing: not the touch, not the claim this call made
      if (claimedNow) this.world.claims.delete(requestId);
      return { status: "insufficient", availableMicros: avail, requiredMicros: amount };
    }
    const c = a.core;
    const { draws } = take(c, amount);
    const deadline = now + ttlMs;
    c.held += amount;
    c.holds.set(requestId, { deadline, amount, draws: copy(draws) });
    const reply: Held = {
      status: "held",
      reservationId: `${accountId}:${requestId}`,
      heldMicros: amount,
      availableMicros: avail - amount,
      expiresAtMs: deadline,
      heldFrom: draws,
      warnings: depleted(available(before), avail - amount),
    };
    a.reservations.set(requestId, { amount, draws: copy(draws), state: "held", reserveReply: copy(reply) });
    return reply;
  }

  settle(ref: { accountId: string; requestId: string }, charge: number): SettleResult {
    const a = this.world.accounts.get(ref.accountId);
    const r = a?.reservations.get(ref.requestId);
    if (!a || !r) return { status: "not_found" };
    if (r.settle) {
      if (r.settle.charge !== charge) return { status: "charge_conflict", firstChargeMicros: r.settle.charge };
      return { ...copy(r.settle.reply), status: "replayed", warnings: [] };
    }
    if (r.state !== "held") return { status: "refunded" };

    const now = this.clock.nowMs();
    const c = a.core;
    const availBefore = available(c);
    const hold = liveHold(c, ref.requestId, now);
    touch(c, now);

    let fromHold = 0;
    let released = 0;
    let chargedFrom: Draw[] = [];
    if (hold) {
      fromHold = Math.min(charge, hold.amount);
      const { first, rest } = splitDraws(hold.draws, fromHold);
      chargedFrom = first;
      released = hold.amount - fromHold;
      giveBack(c, rest);
      c.held -= hold.amount;
      c.holds.delete(ref.requestId);
    }
    const excess = charge - fromHold;
    const extra = take(c, excess);
    const charged = fromHold + extra.taken;
    c.charged += charged;
    chargedFrom = mergeDraws([...chargedFrom, ...extra.draws]);

    const reply: Settled = {
      status: "settled",
      chargedMicros: charged,
      releasedMicros: released,
      availableMicros: available(c),
      holdExpired: hold === undefined,
      uncoveredMicros: excess - extra.taken,
      chargedFrom,
      receipt: "",
      warnings: depleted(availBefore, available(c)),
    };
    r.state = "settled";
    r.settle = { charge, charged, chargedFrom: copy(chargedFrom), reply: copy(reply) };
    return reply;
  }

  refund(ref: { accountId: string; requestId: string }, _reason: string): RefundResult {
    const a = this.world.accounts.get(ref.accountId);
    const r = a?.reservations.get(ref.requestId);
    if (!a || !r) return { status: "not_found" };
    if (r.refundReply) return { ...copy(r.refundReply), status: "replayed" };

    const now = this.clock.nowMs();
    const c = a.core;
    let refunded = 0;
    let toExpired = 0;
    let state: "refunded" | "expired" = "refunded";
    if (r.state === "held") {
      const hold = liveHold(c, ref.requestId, now);
      touch(c, now);
      if (hold) {
        refunded = hold.amount;
        toExpired = giveBack(c, hold.draws);
        c.held -= hold.amount;
        c.holds.delete(ref.requestId);
      } else {
        state = "expired"; // the hold ran out on its own: nothing left to give back
      }
    } else {
      // Settled: the charge goes back to the buckets it came from.
      touch(c, now);
      const s = r.settle;
      if (!s) throw new Error(`model: reservation ${ref.requestId} is ${r.state} without a settlement`);
      refunded = s.charged;
      toExpired = giveBack(c, s.chargedFrom);
      c.charged -= refunded;
    }
    const reply: Refunded = {
      status: "refunded",
      refundedMicros: refunded,
      availableMicros: available(c),
      expiredMicros: toExpired,
      state,
    };
    r.state = state;
    r.refundReply = copy(reply);
    return reply;
  }

  balance(accountId: string): Balance {
    const now = this.clock.nowMs();
    const c = this.world.account(accountId).core;
    touch(c, now);
    return {
      accountId,
      availableMicros: available(c),
      heldMicros: c.held,
      grantedMicros: c.granted,
      chargedMicros: c.charged,
      expiredMicros: c.expired,
      nowMs: now,
      buckets: drawOrder(c).map(bucketState),
      period: null,
      member: null,
    };
  }

  /** The stored state, untouched (like audit-2.lua), with the model's own invariant check. */
  audit(accountId: string): AuditReport {
    const c = this.world.account(accountId).core;
    const avail = available(c);
    const holdSum = [...c.holds.values()].reduce((s, h) => s + h.amount, 0);
    const problems: string[] = [];
    if (c.granted !== avail + c.held + c.charged + c.expired) problems.push("model: granted != sum");
    if (c.held !== holdSum) problems.push("model: held != sum of holds");
    const negative = [c.granted, c.held, c.charged, c.expired].some((v) => v < 0) ||
      [...c.buckets.values()].some((b) => b.remaining < 0 || b.remaining > b.granted);
    if (negative) problems.push("model: negative or overfull amounts");
    return {
      accountId,
      ok: problems.length === 0,
      problems,
      grantedMicros: c.granted,
      availableMicros: avail,
      heldMicros: c.held,
      chargedMicros: c.charged,
      expiredMicros: c.expired,
    };
  }

  /** What the test's command generator needs to aim at: the recorded reservation, if any. */
  peekReservation(
    accountId: string,
    requestId: string,
  ): { amount: number; state: Reservation["state"]; settledCharge: number | undefined } | undefined {
    const r = this.world.accounts.get(accountId)?.reservations.get(requestId);
    return r && { amount: r.amount, state: r.state, settledCharge: r.settle?.charge };
  }

  /** The deadlines of the holds and the expiries of the buckets on record, so a test can step onto them. */
  peekTimes(accountId: string): number[] {
    const c = this.world.accounts.get(accountId)?.core;
    if (!c) return [];
    const times = [...c.holds.values()].map((h) => h.deadline);
    for (const b of c.buckets.values()) if (b.expiresAtMs > 0) times.push(b.expiresAtMs);
    return times.sort((x, y) => x - y);
  }

  peekGrant(
    accountId: string,
    grantId: string,
  ): { amount: number; kind: BucketKindName; priority: number; expiresAtMs: number } | undefined {
    const g = this.world.accounts.get(accountId)?.grants.get(grantId);
    return g && { amount: g.amount, kind: g.kind, priority: g.priority, expiresAtMs: g.expiresAtMs };
  }
}

/** Without a subscription, 'depleted' is the one warning: a change that empties the account. */
function depleted(before: number, after: number): string[] {
  return before > 0 && after === 0 ? ["depleted"] : [];
}

function available(c: Core): number {
  let sum = 0;
  for (const b of c.buckets.values()) sum += b.remaining;
  return sum;
}

/** Priority ascending, then expiry ascending with never last, then bucket number ascending. */
function drawOrder(c: Core): Bucket[] {
  const expiry = (b: Bucket) => (b.expiresAtMs === 0 ? Number.POSITIVE_INFINITY : b.expiresAtMs);
  return [...c.buckets.values()].sort((x, y) => {
    if (x.priority !== y.priority) return x.priority - y.priority;
    if (expiry(x) !== expiry(y)) return expiry(x) < expiry(y) ? -1 : 1;
    return x.n - y.n;
  });
}

/** Expired buckets move what they have left to `expired`; holds past their deadline go back to their buckets. */
function touch(c: Core, now: number): void {
  for (const [id, b] of c.buckets) {
    if (b.expiresAtMs > 0 && b.expiresAtMs <= now) {
      c.expired += b.remaining;
      c.buckets.delete(id);
    }
  }
  for (const [requestId, h] of [...c.holds]) {
    if (h.deadline <= now) releaseHold(c, requestId, h);
  }
}

function releaseHold(c: Core, requestId: string, h: Hold): void {
  c.held -= h.amount;
  giveBack(c, h.draws);
  c.holds.delete(requestId);
}

/** The reservation's hold if it is still live at `now`; a hold past its deadline is released first. */
function liveHold(c: Core, requestId: string, now: number): Hold | undefined {
  const h = c.holds.get(requestId);
  if (!h) return undefined;
  if (h.deadline <= now) {
    releaseHold(c, requestId, h);
    return undefined;
  }
  return h;
}

/** Draws up to `amount` from the live buckets in draw order. */
function take(c: Core, amount: number): { draws: Draw[]; taken: number } {
  const draws: Draw[] = [];
  let left = amount;
  for (const b of drawOrder(c)) {
    if (left === 0) break;
    const t = Math.min(b.remaining, left);
    if (t === 0) continue;
    b.remaining -= t;
    left -= t;
    draws.push({ bucketId: `b${b.n}`, amountMicros: t });
  }
  return { draws, taken: amount - left };
}

/** Gives draws back to their buckets; a bucket that is gone cannot take them, so they count as expired. */
function giveBack(c: Core, draws: Draw[]): number {
  let toExpired = 0;
  for (const d of draws) {
    const b = c.buckets.get(d.bucketId);
    if (b) b.remaining += d.amountMicros;
    else toExpired += d.amountMicros;
  }
  c.expired += toExpired;
  return toExpired;
}

/** The first `amount` of the draws (in order), and what is left of them. */
function splitDraws(draws: Draw[], amount: number): { first: Draw[]; rest: Draw[] } {
  const first: Draw[] = [];
  const rest: Draw[] = [];
  let left = amount;
  for (const d of draws) {
    const f = Math.min(d.amountMicros, left);
    left -= f;
    if (f > 0) first.push({ bucketId: d.bucketId, amountMicros: f });
    if (d.amountMicros > f) rest.push({ bucketId: d.bucketId, amountMicros: d.amountMicros - f });
  }
  return { first, rest };
}

/** One draw per bucket, amounts added, in order of first appearance. */
function mergeDraws(draws: Draw[]): Draw[] {
  const out: Draw[] = [];
  for (const d of draws) {
    const same = out.find((o) => o.bucketId === d.bucketId);
    if (same) same.amountMicros += d.amountMicros;
    else out.push({ ...d });
  }
  return out;
}

function bucketState(b: Bucket): BucketState {
  return {
    bucketId: `b${b.n}`,
    kind: b.kind,
    remainingMicros: b.remaining,
    grantedMicros: b.granted,
    priority: b.priority,
    expiresAtMs: b.expiresAtMs,
    createdAtMs: b.createdAtMs,
    grantId: b.grantId,
  };
}

function cloneCore(c: Core): Core {
  return structuredClone(c);
}

function copy<T>(v: T): T {
  return structuredClone(v);
}
