// The scripts take shortcuts when there is little to do (one bucket: no sort; one draw: no list, one match; one due
// bucket; a usage group's totals in their usual form). Each case here runs the same calls through the shortcut and
// through the general path, with the same expectations, so the two cannot drift apart.
import { beforeEach, describe, expect, it } from "vitest";
import type { Ledger } from "../../src/ledger/ledger.js";
import type { BucketKindName } from "../../src/ledger/status.js";
import { useTestRedis } from "../support/redis.js";
import { C, DAY, HOUR, MINUTE, T0, type TestLedger, expectConsistent, give, openLedger } from "../support/ledger.js";

const env = useTestRedis();
let t: TestLedger;
let ledger: Ledger;

beforeEach(async () => {
  t = await openLedger(env.redis);
  ledger = t.ledger;
});

function fields(flat: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < flat.length; i += 2) out[flat[i] as string] = flat[i + 1] as string;
  return out;
}

async function entries(accountId: string): Promise<Array<Record<string, string>>> {
  return (await env.redis.xrange(ledger.keys.account(accountId).ledger, "-", "+")).map(([, f]) => fields(f));
}

type Grant = [credits: number, kind: BucketKindName, opts?: { expiresAtMs?: number; priority?: number }];

describe("reserve + settle: one bucket and several give the same records", () => {
  // Each account has 100 credits; the hold of 30 and the charge of 45 (15 over the hold) are the same.
  const cases: Array<{ name: string; grants: Grant[]; held: Array<[number, number]>; charged: Array<[number, number]> }> = [
    { name: "one bucket", grants: [[100, "topup"]], held: [[0, 30]], charged: [[0, 45]] },
    {
      name: "three buckets (sorted draw order, merged charge draws)",
      grants: [[60, "topup"], [25, "allowance", { expiresAtMs: T0 + DAY }], [15, "promo"]],
      held: [[1, 25], [2, 5]],
      charged: [[1, 25], [2, 15], [0, 5]],
    },
    {
      name: "two buckets of one priority: earliest expiry, then never-expiring",
      grants: [[70, "promo"], [30, "promo", { expiresAtMs: T0 + HOUR }]],
      held: [[1, 30]],
      charged: [[1, 30], [0, 15]],
    },
  ];
  it.each(cases)("$name", async ({ grants, held, charged }) => {
    const acct = "fp-" + grants.length;
    const ids: string[] = [];
    for (const [credits, kind, opts] of grants) ids.push(await give(ledger, acct, credits, kind, opts));
    const r = await ledger.reserve({
      accountId: acct, requestId: "r1", amountMicros: 30 * C, ttlMs: 10 * MINUTE, usage: { operation: "chat", model: "m-1" },
    });
    if (r.status !== "held") throw new Error(r.status);
    const draws = (list: Array<[number, number]>) =>
      list.map(([i, credits]) => ({ bucketId: ids[i], amountMicros: credits * C }));
    expect(r).toMatchObject({ heldMicros: 30 * C, availableMicros: 70 * C, expiresAtMs: T0 + 10 * MINUTE, warnings: [] });
    expect(r.heldFrom).toEqual(draws(held));

    const s = await ledger.settle({ accountId: acct, requestId: "r1" }, 45 * C, "", "100,0,20");
    expect(s).toEqual({
      status: "settled", chargedMicros: 45 * C, releasedMicros: 0, availableMicros: 55 * C, holdExpired: false,
      uncoveredMicros: 0, chargedFrom: draws(charged), receipt: "", warnings: [],
    });
    const d = (list: Array<[number, number]>) => list.map(([i, credits]) => `${ids[i]?.slice(1)}:${credits * C}`).join(",");
    const log = await entries(acct);
    expect(log.slice(grants.length)).toEqual([
      { op: "reserve", t: String(T0), req: "r1", amt: String(30 * C), d: d(held), exp: String(T0 + 10 * MINUTE) },
      {
        op: "settle", t: String(T0), req: "r1", amt: String(45 * C), d: d(charged), released: "0", uncovered: "0",
        hold_expired: "0", operation: "chat", model: "m-1", qty: "100,0,20",
      },
    ]);
    const k = ledger.keys.account(acct);
    expect(await env.redis.hgetall(k.reservation("r1"))).toMatchObject({
      st: "s", amt: String(30 * C), cq: String(45 * C), ch: String(45 * C), rel: "0", unc: "0", cd: d(charged),
      hx: "0", sav: String(55 * C),
    });
    expect(await env.redis.hget(k.usage, "2026-01-15/4:chat3:m-1")).toBe(`1,${45 * C},0,100,20`);
    expect(await env.redis.zcard(k.holds)).toBe(0);
    expect(await ledger.balance(acct)).toMatchObject({ availableMicros: 55 * C, heldMicros: 0, chargedMicros: 45 * C });
    // The same again through the replay path: the first reply.
    expect(await ledger.settle({ accountId: acct, requestId: "r1" }, 45 * C, "", "100,0,20")).toMatchObject({
      status: "replayed", chargedMicros: 45 * C, chargedFrom: draws(charged),
    });
    await expectConsistent(ledger, acct);
  });
});

describe("expiry: one due bucket and several due at once", () => {
  const cases: Array<{ name: string; grants: Grant[]; order: number[] }> = [
    { name: "one due bucket", grants: [[10, "promo", { expiresAtMs: T0 + HOUR }], [5, "topup"]], order: [0] },
    {
      name: "three due buckets expire in draw order (priority, expiry, age), not grant order",
      grants: [
        [10, "topup", { expiresAtMs: T0 + HOUR }],
        [20, "promo", { expiresAtMs: T0 + 2 * HOUR }],
        [30, "promo", { expiresAtMs: T0 + HOUR }],
        [40, "allowance", { expiresAtMs: T0 + 3 * HOUR }],
        [5, "topup"],
      ],
      order: [3, 2, 1, 0],
    },
  ];
  it.each(cases)("$name", async ({ grants, order }) => {
    const acct = "ex-" + grants.length;
    const ids: string[] = [];
    for (const [credits, kind, opts] of grants) ids.push(await give(ledger, acct, credits, kind, opts));
    t.clock.set(T0 + DAY);
    expect((await ledger.balance(acct)).availableMicros).toBe(5 * C);
    const expired = (await entries(acct)).filter((e) => e.op === "expire");
    expect(expired.map((e) => e.bucket)).toEqual(order.map((i) => ids[i]));
    expect(expired.map((e) => e.amt)).toEqual(order.map((i) => String((grants[i]?.[0] ?? 0) * C)));
    await expectConsistent(ledger, acct);
  });
});

describe("an account with many buckets reads and draws like one with few", () => {
  it("60 buckets", async () => {
    const acct = "many";
    const ids: string[] = [];
    for (let i = 0; i < 60; i++) ids.push(await give(ledger, acct, 1, "topup"));
    const r = await ledger.reserve({ accountId: acct, requestId: "m1", amountMicros: 2.5 * C, ttlMs: MINUTE });
    if (r.status !== "held") throw new Error(r.status);
    expect(r.heldFrom).toEqual([
      { bucketId: ids[0], amountMicros: C }, { bucketId: ids[1], amountMicros: C }, { bucketId: ids[2], amountMicros: 0.5 * C },
    ]);
    expect(r.availableMicros).toBe(57.5 * C);
    const s = await ledger.settle({ accountId: acct, requestId: "m1" }, 2 * C);
    expect(s).toMatchObject({ status: "settled", chargedMicros: 2 * C, releasedMicros: 0.5 * C, availableMicros: 58 * C });
    await expectConsistent(ledger, acct);
  });
});

describe("usage totals: the usual form and any other read the same", () => {
  const cases = [
    { name: "usual form", stored: `3,${7 * C},0,10,20`, after: `4,${12 * C},0,110,40` },
    { name: "negative credits (a day that refunded more)", stored: `1,-${2 * C},${3 * C},5,6`, after: `2,${3 * C},${3 * C},105,26` },
    { name: "a short value", stored: "2,9", after: `3,${5 * C + 9},0,100,20` },
  ];
  it.each(cases)("$name", async ({ stored, after }) => {
    const acct = "u";
    await give(ledger, acct, 100, "topup");
    const k = ledger.keys.account(acct);
    const field = "2026-01-15/4:chat3:m-1";
    await env.redis.hset(k.usage, "days", "2026-01-15", "2026-01-15", "4:chat3:m-1", field, stored);
    const r = await ledger.reserve({
      accountId: acct, requestId: "u1", amountMicros: 5 * C, ttlMs: MINUTE, usage: { operation: "chat", model: "m-1" },
    });
    expect(r.status).toBe("held");
    expect((await ledger.settle({ accountId: acct, requestId: "u1" }, 5 * C, "", "100,0,20")).status).toBe("settled");
    expect(await env.redis.hget(k.usage, field)).toBe(after);
  });
});
