// The ledger against its reference model (test/support/ledger-model.ts), TigerBeetle-auditor style.
//
// 1. Random command sequences on 4-6 accounts, each account driven by its own worker (own clock, own Ledger) on one
//    shared Redis connection: per account the order is fixed, Redis interleaves the accounts. Every reply must equal
//    the model's exactly; after every step the stored totals (audit) must equal the model's and be consistent, and
//    after every step but a clock move the balance must equal the model's. (Right after a clock move nothing is
//    touched, so the next command meets due holds and expired buckets still unreleased: the lazy paths get tested.)
// 2. Many concurrent operations on one account, where replies cannot be predicted: totals are reconciled from the
//    replies themselves, and the invariant is checked in the middle of and after every batch.
//
// Deterministic by default. Replay a failure with the seed (and path) it prints:
//   MODEL_SEED=<seed> [MODEL_PATH=<path>] [MODEL_RUNS=<n>] npx vitest run test/ledger/model.test.ts
// MODEL_RUNS sets the runs of both tests (a soak: MODEL_SEED=$RANDOM MODEL_RUNS=1000); MODEL_SHRINK=0 reports the
// first failure unshrunk; MODEL_STATS=1 prints how often each outcome was reached.

import { isDeepStrictEqual } from "node:util";
import fc from "fast-check";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/ledger/clock.js";
import {
  type Balance, type GrantInput, Ledger, type RefundResult, type ReserveResult, type SettleResult,
} from "../../src/ledger/ledger.js";
import type { BucketKindName } from "../../src/ledger/status.js";
import { LedgerModel, MODEL_DEFAULT_PRIORITY, ModelWorld } from "../support/ledger-model.js";
import { type TestRedis, startTestRedis, uniquePrefix } from "../support/redis.js";

const SEED = envInt("MODEL_SEED") ?? 20260115;
const PATH = process.env.MODEL_PATH;
const RUNS = envInt("MODEL_RUNS") ?? 50;
const COMMANDS_PER_ACCOUNT = 60;
const CONCURRENT_RUNS = envInt("MODEL_RUNS") ?? 30;

/** With MODEL_STATS=1, how often each operation ended in each outcome: shows what the generator reaches. */
const STATS = process.env.MODEL_STATS === "1" ? new Map<string, number>() : undefined;

const T0 = Date.UTC(2026, 0, 15, 12, 0, 0);
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const RETENTION_MS = DAY;
const KINDS: BucketKindName[] = ["allowance", "addon", "trial", "promo", "adjustment", "topup"];

let server: TestRedis;
let redis: Redis;

beforeAll(async () => {
  server = await startTestRedis();
  redis = new Redis(server.url);
  await openLedger(uniquePrefix(), new ManualClock(T0)).loadScripts();
});
afterAll(async () => {
  if (STATS) console.log([...STATS].sort().map(([k, n]) => `${String(n).padStart(6)}  ${k}`).join("\n"));
  redis?.disconnect();
  await server?.stop();
});

function envInt(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new Error(`${name} must be an integer, got ${v}`);
  return n;
}

function openLedger(keyPrefix: string, clock: ManualClock): Ledger {
  return new Ledger(redis, { keyPrefix, retentionMs: RETENTION_MS, ledgerMaxEntries: 0, clock });
}

/** Runs a property with the fixed seed; on failure says how to replay it. */
async function check<T>(name: string, arb: fc.Arbitrary<T>, numRuns: number, prop: (v: T) => Promise<void>) {
  const params: fc.Parameters<[T]> = {
    seed: SEED,
    numRuns,
    ...(PATH ? { path: PATH } : {}),
    // Shrinking reruns against Redis; bound it so a failure is reported well inside the test's timeout.
    interruptAfterTimeLimit: 60_000,
    markInterruptAsFailure: false,
    endOnFailure: process.env.MODEL_SHRINK === "0",
  };
  const details = await fc.check(fc.asyncProperty(arb, prop), params);
  if (details.interrupted && !details.failed) console.warn(`${name}: time limit hit after ${details.numRuns} runs`);
  if (details.failed) {
    const replay = `MODEL_SEED=${details.seed} MODEL_PATH=${details.counterexamplePath ?? ""}`;
    console.error(`${name} failed; replay with: ${replay} npx vitest run test/ledger/model.test.ts`);
    const cause = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
    throw new Error(`${name} failed (${replay})\n${cause}\n\n${fc.defaultReportMessage(details) ?? ""}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Every reply against the model
// ---------------------------------------------------------------------------------------------------------------

type Expiry = { never: true } | { inMs: number } | { atHour: number };

type Command =
  | { op: "grant"; amount: number; kind: BucketKindName; priority: number; expiry: Expiry }
  | { op: "grantAgain"; pick: number; change: "none" | "explicitDefault" | "amount" | "kind" | "priority" | "expiry" }
  | { op: "reserve"; amount: number; ttlMs: number }
  | { op: "reserveAgain"; pick: number; sameAmount: boolean }
  /** One of the request ids the setup claimed, one per account: on another account it is taken. */
  | { op: "reserveShared"; owner: number; sameAmount: boolean }
  /** `held`: aim at a reservation still held on record (maybe past its deadline), else at any request id. */
  | { op: "settle"; pick: number; held: boolean; chargePct: number }
  | { op: "settleAgain"; pick: number; sameCharge: boolean }
  | { op: "refund"; pick: number; held: boolean }
  | { op: "unknown"; what: "settle" | "refund"; which: "never" | "foreign" }
  | { op: "balance" }
  | { op: "advance"; ms: number }
  /** Moves the clock onto (or 1 ms either side of) a hold deadline or bucket expiry still ahead: the edges. */
  | { op: "advanceToEdge"; pick: number; offset: -1 | 0 | 1 };

const expiryArb: fc.Arbitrary<Expiry> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ never: true as const }) },
  { weight: 2, arbitrary: fc.record({ inMs: fc.integer({ min: -MINUTE, max: 2 * HOUR }) }) },
  { weight: 1, arbitrary: fc.record({ inMs: fc.constantFrom(-1, 0, 1) }) },
  { weight: 2, arbitrary: fc.record({ inMs: fc.integer({ min: 2 * HOUR, max: 3 * DAY }) }) },
  // Absolute hours: buckets often share an expiry (the tie goes to the older bucket), and some are already past.
  { weight: 2, arbitrary: fc.record({ atHour: fc.integer({ min: 1, max: 96 }) }) },
);

const amountArb = fc.oneof(
  { weight: 9, arbitrary: fc.integer({ min: 1, max: 3_000 }) },
  { weight: 1, arbitrary: fc.integer({ min: 10_000, max: 1_000_000 }) },
);

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 14,
    arbitrary: fc.record({
      op: fc.constant("grant" as const),
      amount: fc.integer({ min: 1, max: 5_000 }),
      kind: fc.constantFrom(...KINDS),
      priority: fc.oneof(
        { weight: 3, arbitrary: fc.constant(0) },
        { weight: 2, arbitrary: fc.constantFrom(50, 100, 200, 300, 400) },
      ),
      expiry: expiryArb,
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant("grantAgain" as const),
      pick: fc.nat(),
      change: fc.constantFrom("none", "explicitDefault", "amount", "kind", "priority", "expiry"),
    }),
  },
  {
    weight: 20,
    arbitrary: fc.record({
      op: fc.constant("reserve" as const),
      amount: amountArb,
      ttlMs: fc.oneof(fc.integer({ min: 1, max: 3_000 }), fc.integer({ min: MINUTE, max: HOUR })),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({ op: fc.constant("reserveAgain" as const), pick: fc.nat(), sameAmount: fc.boolean() }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant("reserveShared" as const),
      owner: fc.nat({ max: 5 }),
      sameAmount: fc.boolean(),
    }),
  },
  {
    weight: 14,
    arbitrary: fc.record({
      op: fc.constant("settle" as const),
      pick: fc.nat(),
      held: fc.boolean(),
      chargePct: fc.oneof(
        { weight: 2, arbitrary: fc.constantFrom(0, 100) },
        { weight: 3, arbitrary: fc.integer({ min: 1, max: 250 }) },
        { weight: 1, arbitrary: fc.constant(100_000) },
      ),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({ op: fc.constant("settleAgain" as const), pick: fc.nat(), sameCharge: fc.boolean() }),
  },
  { weight: 10, arbitrary: fc.record({ op: fc.constant("refund" as const), pick: fc.nat(), held: fc.boolean() }) },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant("unknown" as const),
      what: fc.constantFrom("settle" as const, "refund" as const),
      which: fc.constantFrom("never" as const, "foreign" as const),
    }),
  },
  { weight: 3, arbitrary: fc.constant({ op: "balance" as const }) },
  {
    weight: 14,
    arbitrary: fc.record({
      op: fc.constant("advance" as const),
      ms: fc.oneof(
        { weight: 3, arbitrary: fc.integer({ min: 0, max: 2_000 }) },
        { weight: 3, arbitrary: fc.integer({ min: MINUTE, max: 2 * HOUR }) },
        { weight: 1, arbitrary: fc.integer({ min: 6 * HOUR, max: 3 * DAY }) },
      ),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant("advanceToEdge" as const),
      pick: fc.nat(),
      offset: fc.constantFrom(-1 as const, 0 as const, 0 as const, 1 as const),
    }),
  },
);

interface Plan {
  accounts: Array<{ setupGrant: number; sharedAmount: number; commands: Command[] }>;
}

const planArb: fc.Arbitrary<Plan> = fc.record({
  accounts: fc.array(
    fc.record({
      setupGrant: fc.integer({ min: 0, max: 5_000 }),
      sharedAmount: fc.integer({ min: 1, max: 2_000 }),
      // size "max": fast-check otherwise keeps arrays near 10 elements.
      commands: fc.array(commandArb, { minLength: 1, maxLength: COMMANDS_PER_ACCOUNT, size: "max" }),
    }),
    { minLength: 4, maxLength: 6 },
  ),
});


/** One account's driver: its clock, its Ledger and its model ledger (over the run's shared model world). */
class Worker {
  readonly clock: ManualClock;
  readonly ledger: Ledger;
  readonly model: LedgerModel;
  readonly requestIds: string[] = [];
  readonly requestAmounts = new Map<string, number>();
  readonly grants: GrantInput[] = [];
  readonly trail: string[] = [];
  private seq = 0;

  constructor(
    readonly index: number,
    readonly accountId: string,
    /** The amount each account reserved under its shared request id in the setup. */
    readonly sharedAmounts: number[],
    prefix: string,
    world: ModelWorld,
  ) {
    // Clocks differ per account on purpose: each account only ever sees its own.
    this.clock = new ManualClock(T0 + index * 1_000);
    this.ledger = openLedger(prefix, this.clock);
    this.model = new LedgerModel(this.clock, world);
  }

  nextId(kind: string): string {
    this.seq += 1;
    return `${this.accountId}-${kind}${this.seq}`;
  }

  fail(what: string, actual: unknown, expected?: unknown): never {
    const lines = [
      `${this.accountId} at t=T0+${this.clock.nowMs() - T0}ms: ${what}`,
      `  redis: ${JSON.stringify(actual)}`,
      ...(expected === undefined ? [] : [`  model: ${JSON.stringify(expected)}`]),
      `  this account's steps so far (last 30):`,
      ...this.trail.slice(-30).map((s) => `    ${s}`),
    ];
    throw new Error(lines.join("\n"));
  }

  same(what: string, actual: unknown, expected: unknown): void {
    if (!isDeepStrictEqual(actual, expected)) this.fail(`${what}: redis and model disagree`, actual, expected);
  }

  /**
   * Runs one call on the model and on Redis; their replies must be identical. When the model says the call is a
   * refusal or a replay, the account's keys (and the request's or grant's) must not change at all.
   */
  async both<R extends object>(
    label: string,
    real: () => Promise<R>,
    model: () => R,
    unchangedIf: readonly string[] = [],
    ids: { requestId?: string; grantId?: string } = {},
  ): Promise<R> {
    const expected = model();
    const status = "status" in expected ? String(expected.status) : "";
    const still = unchangedIf.includes(status);
    const before = still ? await this.snapshot(ids) : undefined;
    const actual = await real();
    this.trail.push(`${label} -> ${JSON.stringify(actual)}`);
    this.same(label, actual, expected);
    if (still) this.same(`${label} changed the stored state`, await this.snapshot(ids), before);
    countOutcome(label, actual);
    return actual;
  }

  /** What one account has stored (another account's worker never writes these keys). */
  async snapshot(ids: { requestId?: string; grantId?: string }): Promise<unknown> {
    const k = this.ledger.keys.account(this.accountId);
    const p = redis.pipeline();
    p.hgetall(k.acct);
    p.zrange(k.holds, 0, "-1", "WITHSCORES");
    p.xlen(k.ledger);
    if (ids.requestId !== undefined) {
      p.hgetall(k.reservation(ids.requestId));
      p.get(this.ledger.keys.requestClaim(ids.requestId));
    }
    if (ids.grantId !== undefined) p.hgetall(k.grant(ids.grantId));
    const replies = (await p.exec()) ?? [];
    return replies.map(([err, value]) => (err ? `error: ${err.message}` : value));
  }

  /**
   * The stored totals, read before anything touches the account, must match the model's and satisfy the invariant
   * (so a refused or replayed call that wrote anything shows); then, with `touch`, the balance must match too.
   */
  async verify(touch: boolean): Promise<void> {
    const report = await this.ledger.audit(this.accountId);
    if (!report.ok) this.fail(`audit() found problems: ${report.problems.join("; ")}`, report);
    const expected = this.model.audit(this.accountId);
    if (!expected.ok) this.fail(`the model broke its own invariant: ${expected.problems.join("; ")}`, expected);
    this.same("audit() totals", report, expected);
    if (touch) {
      const [actual, model] = [await this.ledger.balance(this.accountId), this.model.balance(this.accountId)];
      this.same("balance()", actual, model);
    }
  }

  async grant(input: GrantInput): Promise<void> {
    this.grants.push(input);
    await this.both(`grant ${JSON.stringify(input)}`, () => this.ledger.grant(input), () => this.model.grant(input),
      ["replayed", "grant_conflict", "expires_in_past", "overflow"], { grantId: input.grantId });
  }

  async reserve(requestId: string, amountMicros: number, ttlMs: number): Promise<void> {
    const input = { accountId: this.accountId, requestId, amountMicros, ttlMs };
    await this.both(`reserve ${JSON.stringify(input)}`, () => this.ledger.reserve(input), () => this.model.reserve(input),
      ["replayed", "insufficient", "amount_conflict", "request_id_taken"], { requestId });
  }

  async settle(requestId: string, charge: number): Promise<void> {
    const ref = { accountId: this.accountId, requestId };
    await this.both(
      `settle ${requestId} charge=${charge}`,
      () => this.ledger.settle(ref, charge),
      () => this.model.settle(ref, charge),
      ["replayed", "not_found", "charge_conflict", "refunded"], { requestId });
  }

  async refund(requestId: string): Promise<void> {
    const ref = { accountId: this.accountId, requestId };
    await this.both(
      `refund ${requestId}`,
      () => this.ledger.refund(ref, "model test"),
      () => this.model.refund(ref, "model test"),
      ["replayed", "not_found"], { requestId });
  }

  private pickRequest(pick: number, onlyHeld = false): string {
    const held = onlyHeld
      ? this.requestIds.filter((id) => this.model.peekReservation(this.accountId, id)?.state === "held")
      : [];
    const from = held.length > 0 ? held : this.requestIds;
    return from[pick % from.length] ?? this.nextId("never");
  }

  /** Turns an abstract command into calls, resolved against this account's history and clock. */
  async run(cmd: Command): Promise<void> {
    const now = this.clock.nowMs();
    switch (cmd.op) {
      case "grant": {
        const e = cmd.expiry;
        const expiresAtMs = "never" in e ? 0 : "inMs" in e ? now + e.inMs : T0 + e.atHour * HOUR;
        return this.grant({
          accountId: this.accountId,
          grantId: this.nextId("g"),
          amountMicros: cmd.amount,
          kind: cmd.kind,
          priority: cmd.priority,
          expiresAtMs,
        });
      }
      case "grantAgain": {
        const first = this.grants[cmd.pick % Math.max(1, this.grants.length)];
        if (!first) return this.run({ op: "balance" });
        const again = { ...first };
        if (cmd.change === "explicitDefault") again.priority = first.priority || MODEL_DEFAULT_PRIORITY[first.kind];
        if (cmd.change === "amount") again.amountMicros += 1;
        if (cmd.change === "kind") again.kind = KINDS[(KINDS.indexOf(first.kind) + 1) % KINDS.length] ?? "topup";
        if (cmd.change === "priority") again.priority = (first.priority || MODEL_DEFAULT_PRIORITY[first.kind]) + 7;
        if (cmd.change === "expiry") again.expiresAtMs = first.expiresAtMs === 0 ? now + DAY : 0;
        return this.grant(again);
      }
      case "reserve": {
        const requestId = this.nextId("r");
        this.requestIds.push(requestId);
        this.requestAmounts.set(requestId, cmd.amount);
        return this.reserve(requestId, cmd.amount, cmd.ttlMs);
      }
      case "reserveAgain": {
        const requestId = this.pickRequest(cmd.pick);
        const amount = this.requestAmounts.get(requestId) ?? 100;
        return this.reserve(requestId, cmd.sameAmount ? amount : amount + 1, 10 * MINUTE);
      }
      case "reserveShared": {
        const owner = cmd.owner % this.sharedAmounts.length;
        const requestId = sharedRequestId(owner);
        const amount = this.sharedAmounts[owner] ?? 1;
        return this.reserve(requestId, cmd.sameAmount ? amount : amount + 1, 10 * MINUTE);
      }
      case "settle": {
        const requestId = this.pickRequest(cmd.pick, cmd.held);
        const base = this.model.peekReservation(this.accountId, requestId)?.amount ?? 100;
        return this.settle(requestId, Math.floor((base * cmd.chargePct) / 100));
      }
      case "settleAgain": {
        // Aim at a settled reservation when there is one: that is where replays and conflicts live.
        const settled = this.requestIds.filter(
          (id) => this.model.peekReservation(this.accountId, id)?.settledCharge !== undefined,
        );
        const requestId = settled[cmd.pick % Math.max(1, settled.length)] ?? this.pickRequest(cmd.pick);
        const r = this.model.peekReservation(this.accountId, requestId);
        const first = r?.settledCharge ?? r?.amount ?? 100;
        return this.settle(requestId, cmd.sameCharge ? first : first + 1);
      }
      case "refund":
        return this.refund(this.pickRequest(cmd.pick, cmd.held));
      case "unknown": {
        // "foreign": a request id that another account holds a reservation under; not this account's.
        const requestId = cmd.which === "never"
          ? this.nextId("never")
          : sharedRequestId((this.index + 1) % this.sharedAmounts.length);
        return cmd.what === "settle" ? this.settle(requestId, 10) : this.refund(requestId);
      }
      case "balance":
        await this.both("balance", () => this.ledger.balance(this.accountId), () => this.model.balance(this.accountId));
        return;
      case "advance":
        this.clock.advance(cmd.ms);
        this.trail.push(`advance ${cmd.ms}ms`);
        return;
      case "advanceToEdge": {
        const ahead = this.model.peekTimes(this.accountId).filter((t) => t + cmd.offset > now);
        const target = ahead[cmd.pick % Math.max(1, ahead.length)];
        const ms = target === undefined ? 0 : target + cmd.offset - now;
        this.clock.advance(ms);
        this.trail.push(`advance ${ms}ms (to an edge${cmd.offset ? ` ${cmd.offset > 0 ? "+" : ""}${cmd.offset}` : ""})`);
        return;
      }
    }
  }
}

function countOutcome(label: string, reply: unknown): void {
  if (!STATS) return;
  const r = reply as {
    status?: string;
    holdExpired?: boolean;
    uncoveredMicros?: number;
    state?: string;
    expiredMicros?: number;
  };
  let key = `${label.split(" ")[0]} ${r.status ?? "-"}`;
  if (r.holdExpired) key += " holdExpired";
  if (r.uncoveredMicros) key += " uncovered";
  if (r.state === "expired") key += " state=expired";
  if (r.expiredMicros) key += " toExpired";
  STATS.set(key, (STATS.get(key) ?? 0) + 1);
}

function sharedRequestId(owner: number): string {
  return `shared-${owner}`;
}

/** Waits for all, then throws the first failure (no worker is left running into the next run). */
async function allOrFirstError(tasks: Array<Promise<void>>): Promise<void> {
  const results = await Promise.allSettled(tasks);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;
}

describe("the ledger against its reference model", () => {
  it(`every reply equals the model's (${RUNS} runs, 4-6 concurrent accounts, seed ${SEED})`, async () => {
    await check("model test", planArb, RUNS, async (plan) => {
      const prefix = uniquePrefix();
      const world = new ModelWorld();
      const n = plan.accounts.length;
      const shared = plan.accounts.map((a) => a.sharedAmount);
      const workers = plan.accounts.map((_, i) => new Worker(i, `acct${i}`, shared, prefix, world));

      // Setup, one account after another so that every shared request id is claimed before anyone reuses it.
      for (const [i, w] of workers.entries()) {
        const a = plan.accounts[i]!;
        // Enough for the shared hold: a refused reserve would drop its claim, and the id would be up for grabs.
        await w.grant({
          accountId: w.accountId, grantId: w.nextId("g"), amountMicros: a.sharedAmount + a.setupGrant, kind: "promo",
          priority: 0, expiresAtMs: T0 + DAY,
        });
        w.requestIds.push(sharedRequestId(i));
        w.requestAmounts.set(sharedRequestId(i), a.sharedAmount);
        await w.reserve(sharedRequestId(i), a.sharedAmount, 30 * MINUTE);
        if (w.model.peekReservation(w.accountId, sharedRequestId(i))?.state !== "held") w.fail("setup hold refused", null);
        await w.verify(true);
      }

      // A refused reserve drops the claim it made: another account may then use the request id.
      if (workers.length >= 2) {
        await workers[0]!.reserve("ghost", Number.MAX_SAFE_INTEGER, MINUTE);
        await workers[1]!.reserve("ghost", 1, MINUTE);
      }

      await allOrFirstError(
        workers.map(async (w, i) => {
          for (const cmd of plan.accounts[i]!.commands) {
            await w.run(cmd);
            await w.verify(cmd.op !== "advance" && cmd.op !== "advanceToEdge");
          }
        }),
      );
    });
  }, 120_000);
});

// ---------------------------------------------------------------------------------------------------------------
// 2. Many concurrent operations on one account
// ---------------------------------------------------------------------------------------------------------------

type BatchOp =
  | { op: "reserve"; amount: number; twice: boolean }
  | { op: "settle"; pick: number; chargePct: number; twin: "none" | "same" | "other" | "refund" }
  | { op: "refund"; pick: number; twice: boolean }
  | { op: "audit" }
  | { op: "balance" };

const batchOpArb: fc.Arbitrary<BatchOp> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant("reserve" as const),
      amount: fc.integer({ min: 1, max: 4_000 }),
      twice: fc.boolean(),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant("settle" as const),
      pick: fc.nat(),
      held: fc.boolean(),
      chargePct: fc.oneof(
        { weight: 4, arbitrary: fc.integer({ min: 0, max: 200 }) },
        { weight: 1, arbitrary: fc.constant(5_000) },
      ),
      twin: fc.constantFrom("none" as const, "same" as const, "other" as const, "refund" as const),
    }),
  },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("refund" as const), pick: fc.nat(), twice: fc.boolean() }) },
  { weight: 1, arbitrary: fc.constant({ op: "audit" as const }) },
  { weight: 1, arbitrary: fc.constant({ op: "balance" as const }) },
);

const concurrentPlanArb = fc.record({
  grants: fc.array(
    fc.record({
      amount: fc.integer({ min: 1, max: 20_000 }),
      kind: fc.constantFrom(...KINDS),
      expiresInMs: fc.oneof(fc.constant(0), fc.integer({ min: DAY, max: 30 * DAY })),
    }),
    { minLength: 1, maxLength: 5 },
  ),
  batches: fc.array(fc.array(batchOpArb, { minLength: 2, maxLength: 20, size: "max" }), {
    minLength: 3,
    maxLength: 12,
    size: "max",
  }),
  /** How each hold still open at the end is closed: -1 refund, else settle at that percentage. */
  closing: fc.array(fc.integer({ min: -1, max: 150 }), { minLength: 1, maxLength: 8 }),
});

interface Known {
  amount: number;
  state: "held" | "settled" | "refunded";
  settle?: { charge: number; reply: Extract<SettleResult, { chargedFrom: unknown }> };
  refund?: Extract<RefundResult, { refundedMicros: number }>;
}

type Fired =
  | { op: "reserve"; id: string; amount: number; reply: ReserveResult }
  | { op: "settle"; id: string; charge: number; reply: SettleResult }
  | { op: "refund"; id: string; reply: RefundResult }
  | { op: "audit"; ok: boolean; problems: string[] }
  | { op: "balance"; reply: Balance };

function drawTotal(draws: Array<{ amountMicros: number }>): number {
  return draws.reduce((s, d) => s + d.amountMicros, 0);
}

function assertBalanceSane(b: Balance, where: string): void {
  for (const bucket of b.buckets) {
    if (bucket.remainingMicros < 0 || bucket.remainingMicros > bucket.grantedMicros) {
      throw new Error(`${where}: bucket ${bucket.bucketId} has ${bucket.remainingMicros} of ${bucket.grantedMicros}`);
    }
  }
  const sum = b.buckets.reduce((s, x) => s + x.remainingMicros, 0);
  if (sum !== b.availableMicros) throw new Error(`${where}: buckets sum to ${sum}, available is ${b.availableMicros}`);
  if ([b.availableMicros, b.heldMicros, b.chargedMicros, b.expiredMicros].some((v) => v < 0)) {
    throw new Error(`${where}: a negative total: ${JSON.stringify(b)}`);
  }
  if (b.grantedMicros !== b.availableMicros + b.heldMicros + b.chargedMicros + b.expiredMicros) {
    throw new Error(`${where}: granted != available + held + charged + expired: ${JSON.stringify(b)}`);
  }
}

describe("many concurrent operations on one account", () => {
  it(`keep the invariant, end every hold once, and never hold more than was there (${CONCURRENT_RUNS} runs)`, async () => {
    await check("concurrent test", concurrentPlanArb, CONCURRENT_RUNS, async (plan) => {
      const clock = new ManualClock(T0);
      const ledger = openLedger(uniquePrefix(), clock);
      const acct = "busy";
      const ref = (requestId: string) => ({ accountId: acct, requestId });
      for (const [i, g] of plan.grants.entries()) {
        const r = await ledger.grant({
          accountId: acct, grantId: `g${i}`, amountMicros: g.amount, kind: g.kind, priority: 0,
          expiresAtMs: g.expiresInMs === 0 ? 0 : T0 + g.expiresInMs,
        });
        expect(r.status).toBe("granted");
      }
      const known = new Map<string, Known>();
      const ids: string[] = [];
      let seq = 0;

      for (const [b, batch] of plan.batches.entries()) {
        const where = `batch ${b}`;
        // Time moves a little between batches, never as far as a deadline (1 h) or a bucket expiry (1 day).
        clock.advance(1_000);
        const before = await ledger.balance(acct);
        assertBalanceSane(before, `${where} (before)`);

        const fired: Array<Promise<Fired>> = [];
        const reserve = (id: string, amount: number) =>
          fired.push(ledger.reserve({ accountId: acct, requestId: id, amountMicros: amount, ttlMs: HOUR })
            .then((reply) => ({ op: "reserve" as const, id, amount, reply })));
        const settle = (id: string, charge: number) =>
          fired.push(ledger.settle(ref(id), charge).then((reply) => ({ op: "settle" as const, id, charge, reply })));
        const refund = (id: string) =>
          fired.push(ledger.refund(ref(id), "concurrent").then((reply) => ({ op: "refund" as const, id, reply })));
        for (const op of batch) {
          const pickId = (pick: number) => ids[pick % Math.max(1, ids.length)];
          if (op.op === "reserve") {
            const id = `r${++seq}`;
            reserve(id, op.amount);
            if (op.twice) reserve(id, op.amount);
          } else if (op.op === "settle") {
            const id = pickId(op.pick);
            if (id === undefined) continue;
            const k = known.get(id)!;
            const charge = k.settle?.charge ?? Math.floor((k.amount * op.chargePct) / 100);
            settle(id, charge);
            if (op.twin === "same") settle(id, charge);
            if (op.twin === "other") settle(id, charge + 1);
            if (op.twin === "refund") refund(id);
          } else if (op.op === "refund") {
            const id = pickId(op.pick);
            if (id === undefined) continue;
            refund(id);
            if (op.twice) refund(id);
          } else if (op.op === "audit") {
            fired.push(ledger.audit(acct).then((r) => ({ op: "audit" as const, ok: r.ok, problems: r.problems })));
          } else {
            fired.push(ledger.balance(acct).then((reply) => ({ op: "balance" as const, reply })));
          }
        }
        const results = await Promise.all(fired);
        for (const r of results) if ("reply" in r) countOutcome(`concurrent-${r.op}`, r.reply);

        // Reconcile: what the replies say happened must add up to the difference between the two balances.
        let dAvailable = 0;
        let dHeld = 0;
        let dCharged = 0;
        let reserved = 0;
        let freed = 0; // what settles and refunds of this batch gave back (all a reserve could have used on top)
        const fail: (msg: string, extra?: unknown) => never = (msg, extra) => {
          const detail = extra === undefined ? "" : `\n  ${JSON.stringify(extra)}`;
          throw new Error(`${where}: ${msg}${detail}\n  batch: ${JSON.stringify(results)}`);
        };

        for (const r of results) {
          if (r.op === "audit" && !r.ok) fail(`audit during the batch: ${r.problems.join("; ")}`);
          if (r.op === "balance") assertBalanceSane(r.reply, `${where} (during)`);
        }

        // Reserves: ids are fresh, so each id holds at most once and every repeat replays that hold.
        const reserves = new Map<string, Array<Extract<Fired, { op: "reserve" }>>>();
        for (const r of results) if (r.op === "reserve") reserves.set(r.id, [...(reserves.get(r.id) ?? []), r]);
        for (const [id, rs] of reserves) {
          const held = rs.filter((r) => r.reply.status === "held");
          if (held.length > 1) fail(`request ${id} was held twice`);
          const first = held[0];
          for (const r of rs) {
            if (r.reply.status === "replayed") {
              if (!first) fail(`request ${id} replayed a hold that does not exist`);
              // A replay repeats the hold; the warnings belong to the call that crossed them.
              if (!isDeepStrictEqual({ ...r.reply, status: "held", warnings: "warnings" in first.reply ? first.reply.warnings : [] }, first.reply)) {
                fail(`replay of ${id} differs`, r.reply);
              }
            } else if (r.reply.status !== "held" && r.reply.status !== "insufficient") {
              fail(`unexpected reserve reply for ${id}`, r.reply);
            }
          }
          if (first && first.reply.status === "held") {
            const h = first.reply;
            if (h.heldMicros !== first.amount || drawTotal(h.heldFrom) !== first.amount || h.availableMicros < 0) {
              fail(`hold ${id} does not add up`, h);
            }
            reserved += first.amount;
            dAvailable -= first.amount;
            dHeld += first.amount;
            known.set(id, { amount: first.amount, state: "held" });
            ids.push(id);
          }
        }

        // Settles and refunds, per reservation. The order among them is read off the replies.
        const touched = new Set<string>();
        for (const r of results) if (r.op === "settle" || r.op === "refund") touched.add(r.id);
        for (const id of touched) {
          const k = known.get(id)!;
          const settles = results.filter((r): r is Extract<Fired, { op: "settle" }> => r.op === "settle" && r.id === id);
          const refunds = results.filter((r): r is Extract<Fired, { op: "refund" }> => r.op === "refund" && r.id === id);
          const settled = settles.filter((s) => s.reply.status === "settled");
          const refunded = refunds.filter((s) => s.reply.status === "refunded");
          if (settled.length > 1 || refunded.length > 1) fail(`${id} ended more than once`);
          if (settled.length > 0 && k.state !== "held") fail(`${id} settled again after it was ${k.state}`);
          if (refunded.length > 0 && k.refund) fail(`${id} refunded twice`);
          const newSettle = settled[0];
          const newRefund = refunded[0];

          if (newSettle && newSettle.reply.status === "settled") {
            const s = newSettle.reply;
            const fromHold = Math.min(newSettle.charge, k.amount);
            const extra = s.chargedMicros - fromHold;
            if (s.holdExpired || s.releasedMicros !== k.amount - fromHold || extra < 0 ||
              s.chargedMicros + s.uncoveredMicros !== newSettle.charge || drawTotal(s.chargedFrom) !== s.chargedMicros ||
              (s.uncoveredMicros > 0 && s.availableMicros < 0)) {
              fail(`settle of ${id} does not add up (held ${k.amount})`, newSettle);
            }
            dAvailable += s.releasedMicros - extra;
            dHeld -= k.amount;
            dCharged += s.chargedMicros;
            freed += s.releasedMicros;
            k.state = "settled";
            k.settle = { charge: newSettle.charge, reply: s };
          }
          if (newRefund && newRefund.reply.status === "refunded") {
            const f = newRefund.reply;
            // A refund in the same batch as the settle came after it only if the settle succeeded.
            if (k.state === "held") {
              if (f.refundedMicros !== k.amount || f.state !== "refunded" || f.expiredMicros !== 0) {
                fail(`refund of held ${id} (held ${k.amount}) does not add up`, f);
              }
              dAvailable += f.refundedMicros;
              dHeld -= k.amount;
            } else {
              const charged = k.settle!.reply.chargedMicros;
              if (f.refundedMicros !== charged || f.state !== "refunded" || f.expiredMicros !== 0) {
                fail(`refund of settled ${id} (charged ${charged}) does not add up`, f);
              }
              dAvailable += f.refundedMicros;
              dCharged -= f.refundedMicros;
            }
            freed += f.refundedMicros;
            k.state = "refunded";
            k.refund = f;
          }
          // Every other reply is a replay or a refusal, and must agree with the one outcome.
          for (const s of settles) {
            if (s === newSettle) continue;
            const st = s.reply;
            if (st.status === "replayed" || st.status === "charge_conflict") {
              if (!k.settle) fail(`${id}: ${st.status} without a settlement`, st);
              if (st.status === "replayed" &&
                (s.charge !== k.settle.charge ||
                  !isDeepStrictEqual({ ...st, status: "settled", warnings: k.settle.reply.warnings }, k.settle.reply))) {
                fail(`settle replay of ${id} is not the first reply`, st);
              }
              if (st.status === "charge_conflict" &&
                (st.firstChargeMicros !== k.settle.charge || s.charge === k.settle.charge)) {
                fail(`charge_conflict of ${id} names the wrong first charge`, st);
              }
            } else if (st.status === "refunded") {
              if (k.settle || !k.refund) fail(`${id}: "refunded" but it was settled or never refunded`, st);
            } else {
              fail(`unexpected settle reply for ${id}`, st);
            }
          }
          for (const f of refunds) {
            if (f === newRefund) continue;
            const first = k.refund;
            if (f.reply.status !== "replayed" || !first || !isDeepStrictEqual({ ...f.reply, status: "refunded" }, first)) {
              fail(`refund repeat of ${id} is not the first reply`, f.reply);
            }
          }
        }

        const after = await ledger.balance(acct);
        assertBalanceSane(after, `${where} (after)`);
        const report = await ledger.audit(acct);
        if (!report.ok) fail(`audit after the batch: ${report.problems.join("; ")}`);
        if (reserved > before.availableMicros + freed) {
          fail(`held ${reserved} in one batch with only ${before.availableMicros} available and ${freed} freed`);
        }
        const expected = {
          availableMicros: before.availableMicros + dAvailable,
          heldMicros: before.heldMicros + dHeld,
          chargedMicros: before.chargedMicros + dCharged,
          grantedMicros: before.grantedMicros,
          expiredMicros: before.expiredMicros,
        };
        const got = {
          availableMicros: after.availableMicros,
          heldMicros: after.heldMicros,
          chargedMicros: after.chargedMicros,
          grantedMicros: after.grantedMicros,
          expiredMicros: after.expiredMicros,
        };
        if (!isDeepStrictEqual(got, expected)) {
          fail("the replies do not add up to the new balance", { before, got, expected });
        }
      }

      // Close every hold still open, at once; then nothing may be held and every reservation has ended once.
      const open = ids.filter((id) => known.get(id)!.state === "held");
      const closing = await Promise.all(
        open.map((id, i) => {
          const how = plan.closing[i % plan.closing.length]!;
          return how < 0
            ? ledger.refund(ref(id), "closing")
            : ledger.settle(ref(id), Math.floor((known.get(id)!.amount * how) / 100));
        }),
      );
      for (const [i, r] of closing.entries()) {
        if (r.status !== "settled" && r.status !== "refunded") throw new Error(`closing ${open[i]}: ${JSON.stringify(r)}`);
      }
      const end = await ledger.balance(acct);
      assertBalanceSane(end, "at the end");
      expect(end.heldMicros).toBe(0);
      expect((await ledger.audit(acct)).ok).toBe(true);
      for (const id of ids) {
        const view = await ledger.reservation(acct, id);
        if (view?.state !== "settled" && view?.state !== "refunded") {
          throw new Error(`reservation ${id} did not end: ${JSON.stringify(view)}`);
        }
      }
    });
  }, 120_000);
});
