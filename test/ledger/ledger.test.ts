import { beforeEach, describe, expect, it } from "vitest";
import { Cluster } from "ioredis";
import { Ledger } from "../../src/ledger/ledger.js";
import type { BucketKindName } from "../../src/ledger/status.js";
import { startTestCluster, uniquePrefix, useTestRedis } from "../support/redis.js";
import {
  C, DAY, HOUR, MINUTE, T0, type TestLedger, expectConsistent, give, openLedger, snapshot,
} from "../support/ledger.js";

const env = useTestRedis();
let t: TestLedger;
let ledger: Ledger;

beforeEach(async () => {
  t = await openLedger(env.redis);
  ledger = t.ledger;
});

const acct = "acme";
let n = 0;
const rid = () => `req-${++n}`;
const reserve = (credits: number, opts: { requestId?: string; ttlMs?: number; accountId?: string } = {}) =>
  ledger.reserve({
    accountId: opts.accountId ?? acct,
    requestId: opts.requestId ?? rid(),
    amountMicros: Math.round(credits * C),
    ttlMs: opts.ttlMs ?? 10 * MINUTE,
  });
const ref = (requestId: string, accountId = acct) => ({ accountId, requestId });

async function held(credits: number, opts: { ttlMs?: number } = {}): Promise<string> {
  const requestId = rid();
  const r = await reserve(credits, { ...opts, requestId });
  expect(r.status).toBe("held");
  return requestId;
}

describe("draw order: priority, then earliest expiry, then age", () => {
  type G = [label: string, credits: number, kind: BucketKindName, opts?: { expiresInMs?: number; priority?: number }];
  const cases: Array<{ name: string; grants: G[]; reserve: number; takes: Array<[string, number]> }> = [
    {
      name: "allowance, then addon, then promo, then topup",
      grants: [["top", 50, "topup"], ["promo", 10, "promo"], ["addon", 20, "addon"], ["allow", 30, "allowance", { expiresInMs: DAY }]],
      reserve: 65,
      takes: [["allow", 30], ["addon", 20], ["promo", 10], ["top", 5]],
    },
    {
      name: "the earliest expiry first within one priority",
      grants: [["late", 10, "allowance", { expiresInMs: 2 * DAY }], ["soon", 10, "allowance", { expiresInMs: DAY }]],
      reserve: 15,
      takes: [["soon", 10], ["late", 5]],
    },
    {
      name: "never-expiring last within one priority",
      grants: [["never", 10, "promo"], ["expiring", 10, "promo", { expiresInMs: DAY }]],
      reserve: 12,
      takes: [["expiring", 10], ["never", 2]],
    },
    {
      name: "an explicit priority overrides the kind's default",
      grants: [["allow", 10, "allowance"], ["vip", 10, "topup", { priority: 50 }]],
      reserve: 5,
      takes: [["vip", 5]],
    },
    {
      name: "trial, promo and adjustment share a priority: then by age",
      grants: [["trial", 5, "trial"], ["adj", 5, "adjustment"], ["promo", 5, "promo"]],
      reserve: 12,
      takes: [["trial", 5], ["adj", 5], ["promo", 2]],
    },
  ];
  it.each(cases)("$name", async ({ grants, reserve: amount, takes }) => {
    const ids = new Map<string, string>();
    for (const [label, credits, kind, o] of grants) {
      const opts: { expiresAtMs?: number; priority?: number } = {};
      if (o?.expiresInMs) opts.expiresAtMs = T0 + o.expiresInMs;
      if (o?.priority) opts.priority = o.priority;
      ids.set(label, await give(ledger, acct, credits, kind, opts));
    }
    const r = await reserve(amount);
    if (r.status !== "held") throw new Error(r.status);
    expect(r.heldFrom).toEqual(takes.map(([label, credits]) => ({ bucketId: ids.get(label), amountMicros: credits * C })));
    await expectConsistent(ledger, acct);
  });
});

describe("settle: charge from the hold, release the rest, excess from what is left", () => {
  // The account: an allowance of 100 and a topup of 20; the hold: 30, taken from the allowance.
  const cases = [
    { charge: 30, charged: 30, released: 0, uncovered: 0, available: 90, from: [["b1", 30]] },
    { charge: 12, charged: 12, released: 18, uncovered: 0, available: 108, from: [["b1", 12]] },
    { charge: 0, charged: 0, released: 30, uncovered: 0, available: 120, from: [] },
    { charge: 50, charged: 50, released: 0, uncovered: 0, available: 70, from: [["b1", 50]] },
    { charge: 110, charged: 110, released: 0, uncovered: 0, available: 10, from: [["b1", 100], ["b2", 10]] },
    { charge: 200, charged: 120, released: 0, uncovered: 80, available: 0, from: [["b1", 100], ["b2", 20]] },
  ];
  it.each(cases)("charge $charge → charged $charged, released $released, uncovered $uncovered", async (c) => {
    await give(ledger, acct, 100, "allowance");
    await give(ledger, acct, 20, "topup");
    const requestId = await held(30);
    const r = await ledger.settle(ref(requestId), c.charge * C);
    expect(r).toEqual({
      status: "settled",
      chargedMicros: c.charged * C,
      releasedMicros: c.released * C,
      availableMicros: c.available * C,
      holdExpired: false,
      uncoveredMicros: c.uncovered * C,
      chargedFrom: c.from.map(([bucketId, credits]) => ({ bucketId, amountMicros: (credits as number) * C })),
      receipt: "",
      // Without a subscription, the one warning: the Settle that empties the account.
      warnings: c.available === 0 ? ["depleted"] : [],
    });
    const balance = await ledger.balance(acct);
    expect(balance).toMatchObject({ availableMicros: c.available * C, heldMicros: 0, chargedMicros: c.charged * C });
    const [entry] = await env.redis.xrevrange(ledger.keys.account(acct).ledger, "+", "-", "COUNT", 1);
    const fields = Object.fromEntries(chunk(entry?.[1] ?? []));
    expect(fields).toMatchObject({ op: "settle", req: requestId, amt: String(c.charged * C), uncovered: String(c.uncovered * C) });
    await expectConsistent(ledger, acct);
  });
});

describe("refund", () => {
  it("releases a held reservation in full: a failed generation costs nothing", async () => {
    await give(ledger, acct, 100, "allowance");
    const requestId = await held(40);
    const r = await ledger.refund(ref(requestId), "upstream 500");
    expect(r).toEqual({ status: "refunded", refundedMicros: 40 * C, availableMicros: 100 * C, expiredMicros: 0, state: "refunded" });
    expect(await ledger.balance(acct)).toMatchObject({ availableMicros: 100 * C, heldMicros: 0, chargedMicros: 0 });
    expect(await ledger.settle(ref(requestId), 10 * C)).toEqual({ status: "refunded" });
    await expectConsistent(ledger, acct);
  });

  it("gives a settled charge back to the buckets it came from, at most once", async () => {
    const allow = await give(ledger, acct, 10, "allowance");
    const top = await give(ledger, acct, 100, "topup");
    const requestId = await held(8);
    await ledger.settle(ref(requestId), 25 * C); // 8 from the hold, 2 more allowance, 15 topup
    const first = await ledger.refund(ref(requestId), "bad result");
    expect(first).toEqual({ status: "refunded", refundedMicros: 25 * C, availableMicros: 110 * C, expiredMicros: 0, state: "refunded" });
    const buckets = (await ledger.balance(acct)).buckets.map((b) => [b.bucketId, b.remainingMicros]);
    expect(buckets).toEqual([[allow, 10 * C], [top, 100 * C]]);

    const before = await snapshot(env.redis, t.prefix);
    expect(await ledger.refund(ref(requestId), "again")).toEqual({ ...first, status: "replayed" });
    expect(await snapshot(env.redis, t.prefix)).toEqual(before);
    await expectConsistent(ledger, acct);
  });

  it("records as expired what goes back to a bucket that expired meanwhile", async () => {
    await give(ledger, acct, 10, "allowance", { expiresAtMs: T0 + HOUR });
    await give(ledger, acct, 100, "topup");
    const requestId = await held(15); // 10 allowance + 5 topup
    await ledger.settle(ref(requestId), 15 * C);
    t.clock.advance(2 * HOUR); // the allowance is gone
    const r = await ledger.refund(ref(requestId), "support");
    expect(r).toEqual({ status: "refunded", refundedMicros: 15 * C, availableMicros: 100 * C, expiredMicros: 10 * C, state: "refunded" });
    expect(await ledger.balance(acct)).toMatchObject({ availableMicros: 100 * C, chargedMicros: 0, expiredMicros: 10 * C });
    await expectConsistent(ledger, acct);
  });

  it("of a hold that already ran out gives nothing and says expired", async () => {
    await give(ledger, acct, 100, "allowance");
    const requestId = await held(40, { ttlMs: MINUTE });
    t.clock.advance(MINUTE);
    expect(await ledger.refund(ref(requestId), "late")).toEqual({
      status: "refunded", refundedMicros: 0, availableMicros: 100 * C, expiredMicros: 0, state: "expired",
    });
    expect(await ledger.settle(ref(requestId), C)).toEqual({ status: "refunded" });
    await expectConsistent(ledger, acct);
  });

  it("of an unknown reservation is not found and changes nothing", async () => {
    await give(ledger, acct, 100, "allowance");
    const before = await snapshot(env.redis, t.prefix);
    expect(await ledger.refund(ref("nope"), "")).toEqual({ status: "not_found" });
    expect(await ledger.settle(ref("nope"), C)).toEqual({ status: "not_found" });
    expect(await ledger.reservation(acct, "nope")).toBeNull();
    expect(await snapshot(env.redis, t.prefix)).toEqual(before);
  });
});

describe("idempotency", () => {
  it("a repeated Reserve returns the first reply and holds nothing more, even after the hold settled", async () => {
    await give(ledger, acct, 100, "allowance");
    const requestId = rid();
    const first = await reserve(30, { requestId });
    await ledger.settle(ref(requestId), 10 * C);
    const before = await snapshot(env.redis, t.prefix);
    expect(await reserve(30, { requestId })).toEqual({ ...first, status: "replayed" });
    expect(await snapshot(env.redis, t.prefix)).toEqual(before);
  });

  it("the same request id with another amount or on another account is refused and changes nothing", async () => {
    await give(ledger, acct, 100, "allowance");
    await give(ledger, "globex", 100, "allowance");
    const requestId = rid();
    await reserve(30, { requestId });
    const before = await snapshot(env.redis, t.prefix);
    expect(await reserve(31, { requestId })).toEqual({ status: "amount_conflict", firstAmountMicros: 30 * C });
    expect(await reserve(30, { requestId, accountId: "globex" })).toEqual({ status: "request_id_taken", otherAccountId: acct });
    expect(await snapshot(env.redis, t.prefix)).toEqual(before);
  });

  it("a refused Reserve leaves its request id free: another account may take it, the same one may retry", async () => {
    await give(ledger, "globex", 100, "allowance");
    const requestId = rid();
    expect((await reserve(30, { requestId })).status).toBe("insufficient");
    expect(await env.redis.exists(ledger.keys.requestClaim(requestId))).toBe(0);
    expect((await reserve(30, { requestId, accountId: "globex" })).status).toBe("held");
    expect(await env.redis.get(ledger.keys.requestClaim(requestId))).toBe("globex");
    expect(await reserve(30, { requestId })).toEqual({ status: "request_id_taken", otherAccountId: "globex" });
  });

  it("on Cluster the request id is claimed by a command of its own, with the same outcomes", async () => {
    const cluster = await startTestCluster();
    const client = new Cluster(cluster.nodes);
    try {
      const l = new Ledger(client, { keyPrefix: uniquePrefix(), retentionMs: DAY, ledgerMaxEntries: 0 });
      await l.loadScripts();
      const grant = (accountId: string) =>
        l.grant({ accountId, grantId: "g", amountMicros: 100 * C, kind: "topup", priority: 0, expiresAtMs: 0 });
      await grant("globex");
      const r = (accountId: string, credits: number) => l.reserve({ accountId, requestId: "shared", amountMicros: credits * C, ttlMs: MINUTE });
      expect((await r("acme", 30)).status).toBe("insufficient");
      expect(await client.exists(l.keys.requestClaim("shared"))).toBe(0);
      expect((await r("globex", 30)).status).toBe("held");
      expect((await r("globex", 30)).status).toBe("replayed");
      await grant("acme");
      expect(await r("acme", 30)).toEqual({ status: "request_id_taken", otherAccountId: "globex" });
      expect((await l.balance("acme")).availableMicros).toBe(100 * C);
    } finally {
      client.disconnect();
      await cluster.stop();
    }
  });

  it("a repeated Settle returns the first outcome; another charge is refused", async () => {
    await give(ledger, acct, 100, "allowance");
    const requestId = await held(30);
    const first = await ledger.settle(ref(requestId), 20 * C);
    const before = await snapshot(env.redis, t.prefix);
    expect(await ledger.settle(ref(requestId), 20 * C)).toEqual({ ...first, status: "replayed" });
    expect(await ledger.settle(ref(requestId), 21 * C)).toEqual({ status: "charge_conflict", firstChargeMicros: 20 * C });
    expect(await snapshot(env.redis, t.prefix)).toEqual(before);
  });

  it("a seen grant id adds nothing; a different grant under it is refused", async () => {
    const grant = { accountId: acct, grantId: "pack-1", amountMicros: 50 * C, kind: "topup" as const, priority: 0, expiresAtMs: 0 };
    const first = await ledger.grant(grant);
    const before = await snapshot(env.redis, t.prefix);
    expect(await ledger.grant(grant)).toEqual({ ...first, status: "replayed" });
    expect(await ledger.grant({ ...grant, amountMicros: 60 * C })).toMatchObject({ status: "grant_conflict", first: { amountMicros: 50 * C } });
    expect(await ledger.grant({ ...grant, kind: "promo" })).toMatchObject({ status: "grant_conflict" });
    expect(await snapshot(env.redis, t.prefix)).toEqual(before);
    expect((await ledger.balance(acct)).availableMicros).toBe(50 * C);
  });

  it("records are kept for the retention window, then forgotten", async () => {
    const short = await openLedger(env.redis, { retentionMs: 300 });
    await give(short.ledger, acct, 100, "allowance");
    const r = await short.ledger.reserve({ accountId: acct, requestId: "r", amountMicros: C, ttlMs: 100 });
    expect(r.status).toBe("held");
    await short.ledger.settle(ref("r"), C);
    expect(await short.ledger.reservation(acct, "r")).not.toBeNull();
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await short.ledger.reservation(acct, "r")).toBeNull();
    expect(await env.redis.exists(short.ledger.keys.requestClaim("r"))).toBe(0);
  });
});

describe("priced holds", () => {
  it("a repeat is the same request by its fingerprint, not its amount; the pricing context stays with the hold", async () => {
    await give(ledger, acct, 100, "allowance");
    const pricing = { context: '{"op":"chat","in":812}', catalogVersion: "v1" };
    const first = await ledger.reserve({ accountId: acct, requestId: "p1", amountMicros: 7 * C, ttlMs: MINUTE, fingerprint: "f-abc", pricing });
    expect(first.status).toBe("held");
    // The catalog changed between retries: the same request prices differently but is still a replay.
    const again = await ledger.reserve({ accountId: acct, requestId: "p1", amountMicros: 9 * C, ttlMs: MINUTE, fingerprint: "f-abc", pricing });
    expect(again).toEqual({ ...first, status: "replayed" });
    expect(await ledger.reserve({ accountId: acct, requestId: "p1", amountMicros: 7 * C, ttlMs: MINUTE, fingerprint: "f-other" })).toEqual({
      status: "amount_conflict", firstAmountMicros: 7 * C,
    });
    expect((await ledger.reservation(acct, "p1"))?.pricing).toEqual(pricing);
  });

  it("a Settle's receipt is kept with the reservation, in the ledger entry, and in its replay", async () => {
    await give(ledger, acct, 100, "allowance");
    const requestId = await held(10);
    const receipt = '{"total_micros":"4000000"}';
    const first = await ledger.settle(ref(requestId), 4 * C, receipt);
    expect(first).toMatchObject({ status: "settled", receipt });
    expect(await ledger.settle(ref(requestId), 4 * C, "ignored on replay")).toEqual({ ...first, status: "replayed" });
    expect((await ledger.reservation(acct, requestId))?.receipt).toBe(receipt);
    const [entry] = await env.redis.xrevrange(ledger.keys.account(acct).ledger, "+", "-", "COUNT", 1);
    expect(Object.fromEntries(chunk(entry?.[1] ?? []))).toMatchObject({ op: "settle", receipt });
  });
});

describe("expiry, with the injected clock", () => {
  it("a bucket stops counting the moment it expires; what it had left is recorded as expired", async () => {
    const b = await give(ledger, acct, 40, "allowance", { expiresAtMs: T0 + DAY });
    await give(ledger, acct, 5, "topup");
    t.clock.set(T0 + DAY - 1);
    expect((await ledger.balance(acct)).availableMicros).toBe(45 * C);
    t.clock.set(T0 + DAY);
    expect(await ledger.balance(acct)).toMatchObject({ availableMicros: 5 * C, expiredMicros: 40 * C });
    expect((await reserve(6)).status).toBe("insufficient");
    const entries = await env.redis.xrange(ledger.keys.account(acct).ledger, "-", "+");
    const expired = entries.map(([, f]) => Object.fromEntries(chunk(f))).filter((e) => e.op === "expire");
    expect(expired).toEqual([{ op: "expire", t: String(T0 + DAY), bucket: b, kind: "allowance", amt: String(40 * C) }]);
    await expectConsistent(ledger, acct);
  });

  it("a hold past its deadline is released when the account is next touched", async () => {
    await give(ledger, acct, 100, "allowance");
    const requestId = await held(70, { ttlMs: MINUTE });
    t.clock.advance(MINUTE - 1);
    expect((await ledger.reservation(acct, requestId))?.state).toBe("held");
    expect((await ledger.balance(acct)).heldMicros).toBe(70 * C);
    t.clock.advance(1);
    expect((await ledger.reservation(acct, requestId))?.state).toBe("expired");
    expect(await ledger.balance(acct)).toMatchObject({ availableMicros: 100 * C, heldMicros: 0 });
    const ops = (await env.redis.xrange(ledger.keys.account(acct).ledger, "-", "+")).map(([, f]) => f[1]);
    expect(ops).toEqual(["grant", "reserve", "hold_expired"]);
    await expectConsistent(ledger, acct);
  });

  it("a Settle after the deadline still charges the real cost from what is available, and says so", async () => {
    await give(ledger, acct, 100, "allowance");
    const requestId = await held(30, { ttlMs: MINUTE });
    t.clock.advance(5 * MINUTE);
    expect(await ledger.settle(ref(requestId), 25 * C)).toEqual({
      status: "settled", chargedMicros: 25 * C, releasedMicros: 0, availableMicros: 75 * C,
      holdExpired: true, uncoveredMicros: 0, chargedFrom: [{ bucketId: "b1", amountMicros: 25 * C }], receipt: "", warnings: [],
    });
    expect(await ledger.reservation(acct, requestId)).toMatchObject({ state: "settled", holdExpired: true, chargedMicros: 25 * C });
    await expectConsistent(ledger, acct);
  });

  it("what a hold drew from a bucket that expired while held is recorded as expired when released", async () => {
    await give(ledger, acct, 50, "allowance", { expiresAtMs: T0 + HOUR });
    const requestId = await held(50, { ttlMs: 2 * HOUR });
    t.clock.advance(HOUR + MINUTE);
    const r = await ledger.settle(ref(requestId), 20 * C);
    expect(r).toMatchObject({ status: "settled", chargedMicros: 20 * C, releasedMicros: 30 * C, availableMicros: 0, holdExpired: false });
    expect(await ledger.balance(acct)).toMatchObject({ grantedMicros: 50 * C, chargedMicros: 20 * C, expiredMicros: 30 * C });
    await expectConsistent(ledger, acct);
  });

  it("grants that expire in the past are refused", async () => {
    expect(await ledger.grant({ accountId: acct, grantId: "g-past", amountMicros: C, kind: "promo", priority: 0, expiresAtMs: T0 })).toEqual({
      status: "expires_in_past", nowMs: T0,
    });
  });
});

describe("exact integers", () => {
  it("keeps every digit up to 2^53 - 1 micros and refuses to go past it", async () => {
    const max = Number.MAX_SAFE_INTEGER;
    await ledger.grant({ accountId: acct, grantId: "huge", amountMicros: max - 1, kind: "topup", priority: 0, expiresAtMs: 0 });
    const r = await ledger.reserve({ accountId: acct, requestId: "big", amountMicros: max - 2, ttlMs: MINUTE });
    expect(r).toMatchObject({ status: "held", heldMicros: max - 2, availableMicros: 1 });
    expect(await ledger.settle(ref("big"), max - 3)).toMatchObject({ chargedMicros: max - 3, releasedMicros: 1, availableMicros: 2 });
    expect(await ledger.balance(acct)).toMatchObject({ grantedMicros: max - 1, chargedMicros: max - 3, availableMicros: 2 });
    expect(await env.redis.hget(ledger.keys.account(acct).acct, "charged")).toBe(String(max - 3));
    expect(await ledger.grant({ accountId: acct, grantId: "one-more", amountMicros: 2, kind: "topup", priority: 0, expiresAtMs: 0 })).toEqual({
      status: "overflow", headroomMicros: 1,
    });
    await expectConsistent(ledger, acct);
  });
});

describe("concurrency", () => {
  it("200 concurrent 1-credit Reserves on a 100-credit account: exactly 100 are held", async () => {
    await give(ledger, acct, 100, "allowance");
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => reserve(1, { requestId: `c-${i}` })));
    const count = (s: string) => results.filter((r) => r.status === s).length;
    expect(count("held")).toBe(100);
    expect(count("insufficient")).toBe(100);
    expect(await ledger.balance(acct)).toMatchObject({ availableMicros: 0, heldMicros: 100 * C });
    await expectConsistent(ledger, acct);
  });

  it("a refused Reserve changes nothing", async () => {
    await give(ledger, acct, 10, "allowance", { expiresAtMs: T0 + HOUR });
    await reserve(5, { ttlMs: MINUTE });
    t.clock.advance(2 * HOUR); // due bookkeeping (an expired bucket and hold) is not written by a refusal
    const before = await snapshot(env.redis, t.prefix);
    expect(await reserve(1)).toEqual({ status: "insufficient", availableMicros: 0, requiredMicros: C });
    expect(await snapshot(env.redis, t.prefix)).toEqual(before);
  });
});

function chunk(flat: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i] as string, flat[i + 1] as string]);
  return out;
}
