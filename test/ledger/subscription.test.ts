import { beforeEach, describe, expect, it } from "vitest";
import { Cluster, Redis } from "ioredis";
import { ManualClock } from "../../src/ledger/clock.js";
import { Ledger, type SubscriptionTerms, type SubscriptionView } from "../../src/ledger/ledger.js";
import { startTestCluster, uniquePrefix, useTestRedis } from "../support/redis.js";
import { C, DAY, HOUR, MINUTE, type TestLedger, expectConsistent, give, openLedger, snapshot, subscriptionTerms } from "../support/ledger.js";

const env = useTestRedis();
let t: TestLedger;
let ledger: Ledger;

beforeEach(async () => {
  t = await openLedger(env.redis);
  ledger = t.ledger;
});

const acct = "ws";
const at = (iso: string) => Date.parse(iso);
let n = 0;
const rid = () => `req-${++n}`;

const terms = (over: Partial<SubscriptionTerms> = {}): SubscriptionTerms => subscriptionTerms({ creditsMicros: 40 * C, ...over });

async function subscribe(over: Partial<SubscriptionTerms> = {}, accountId = acct): Promise<SubscriptionView> {
  const r = await ledger.setSubscription(accountId, terms(over));
  if (r.status !== "ok") throw new Error(JSON.stringify(r));
  return r.subscription;
}

async function spend(credits: number, opts: { memberId?: string; accountId?: string } = {}): Promise<string> {
  const requestId = rid();
  const accountId = opts.accountId ?? acct;
  const r = await ledger.reserve({
    accountId,
    requestId,
    amountMicros: Math.round(credits * C),
    ttlMs: 10 * MINUTE,
    ...(opts.memberId ? { memberId: opts.memberId } : {}),
  });
  if (r.status !== "held") throw new Error(`reserve ${credits}: ${JSON.stringify(r)}`);
  const s = await ledger.settle({ accountId, requestId }, Math.round(credits * C));
  if (s.status !== "settled") throw new Error(JSON.stringify(s));
  return requestId;
}

async function entries(accountId = acct): Promise<Array<Record<string, string>>> {
  const raw = await t.redis.xrange(ledger.keys.account(accountId).ledger, "-", "+");
  return raw.map(([, fields]) => {
    const m: Record<string, string> = {};
    for (let i = 0; i < fields.length; i += 2) m[fields[i] as string] = fields[i + 1] as string;
    return m;
  });
}

const iso = (ms: number) => new Date(ms).toISOString();

describe("periods roll forward by themselves, with no cron", () => {
  it("a monthly plan resets on the billing day: no rollover, the unused allowance recorded as expired", async () => {
    t.clock.set(at("2026-03-05T09:30:00Z"));
    const s = await subscribe();
    expect(iso(s.currentPeriod!.startMs)).toBe("2026-03-05T09:30:00.000Z");
    expect(iso(s.currentPeriod!.endMs)).toBe("2026-04-05T09:30:00.000Z");
    await spend(15);

    let b = await ledger.balance(acct);
    expect(b.availableMicros).toBe(25 * C);
    expect(b.period).toMatchObject({ plan: "base", usedMicros: 15 * C, allowanceMicros: 40 * C, unlimited: false });

    t.clock.set(at("2026-04-05T09:29:59.999Z"));
    expect((await ledger.balance(acct)).availableMicros).toBe(25 * C);
    t.clock.set(at("2026-04-05T09:30:00Z"));
    b = await ledger.balance(acct);
    expect(b.availableMicros).toBe(40 * C);
    expect(b.expiredMicros).toBe(25 * C);
    expect(b.period).toMatchObject({ usedMicros: 0, allowanceMicros: 40 * C });
    expect(iso(b.period!.startMs)).toBe("2026-04-05T09:30:00.000Z");
    expect(iso(b.period!.endMs)).toBe("2026-05-05T09:30:00.000Z");
    const log = await entries();
    const tail = log.slice(-3).map((e) => e.op);
    expect(tail).toEqual(["expire", "grant", "period"]);
    expect(log.at(-3)).toMatchObject({ op: "expire", amt: String(25 * C), kind: "allowance" });
    await expectConsistent(ledger, acct);
  });

  it("an account untouched for three months resets once, to the period holding now", async () => {
    t.clock.set(at("2026-01-31T00:00:00Z"));
    await subscribe();
    t.clock.set(at("2026-05-02T12:00:00Z"));
    const b = await ledger.balance(acct);
    expect(iso(b.period!.startMs)).toBe("2026-04-30T00:00:00.000Z");
    expect(iso(b.period!.endMs)).toBe("2026-05-31T00:00:00.000Z");
    expect(b.availableMicros).toBe(40 * C);
    const periods = (await entries()).filter((e) => e.op === "period");
    expect(periods).toHaveLength(1);
    expect(periods[0]).toMatchObject({ missed: "2", from: String(at("2026-02-28T00:00:00Z")) });
    expect(b.grantedMicros).toBe(80 * C);
    await expectConsistent(ledger, acct);
  });

  it("anchors on the 31st clamp to short months and come back; leap years too", async () => {
    t.clock.set(at("2027-12-31T18:00:00Z"));
    await subscribe();
    const seen: string[] = [];
    for (const day of ["2028-01-15", "2028-02-10", "2028-03-01", "2028-04-05", "2028-05-01"]) {
      t.clock.set(at(`${day}T00:00:00Z`));
      const b = await ledger.balance(acct);
      seen.push(`${iso(b.period!.startMs).slice(0, 10)}..${iso(b.period!.endMs).slice(0, 10)}`);
    }
    expect(seen).toEqual([
      "2027-12-31..2028-01-31",
      "2028-01-31..2028-02-29",
      "2028-02-29..2028-03-31",
      "2028-03-31..2028-04-30",
      "2028-04-30..2028-05-31",
    ]);
  });

  it("a yearly plan grants the year's credits upfront and refreshes on the annual renewal only", async () => {
    t.clock.set(at("2026-02-10T00:00:00Z"));
    await subscribe({ planId: "personal-annual", period: "year", creditsMicros: 720 * C });
    await spend(700);
    t.clock.set(at("2026-12-31T00:00:00Z"));
    expect((await ledger.balance(acct)).availableMicros).toBe(20 * C);
    t.clock.set(at("2027-02-10T00:00:00Z"));
    const b = await ledger.balance(acct);
    expect(b.availableMicros).toBe(720 * C);
    expect(iso(b.period!.endMs)).toBe("2028-02-10T00:00:00.000Z");
    await expectConsistent(ledger, acct);
  });

  it("many sidecars touching at once after the period ended reset it exactly once", async () => {
    t.clock.set(at("2026-03-05T00:00:00Z"));
    await subscribe({ creditsMicros: 100 * C });
    await spend(60);
    t.clock.set(at("2026-04-06T00:00:00Z"));
    // Six sidecars: each its own connection and Ledger on the same keys, all calling at the same moment.
    const clients = Array.from({ length: 6 }, () => new Redis(env.server.url, { lazyConnect: false }));
    try {
      const sidecars = clients.map(
        (c) => new Ledger(c, { keyPrefix: t.prefix, retentionMs: DAY, ledgerMaxEntries: 0, clock: t.clock }),
      );
      await Promise.all(sidecars.map((l) => l.loadScripts()));
      await Promise.all(
        Array.from({ length: 60 }, (_, i) => {
          const l = sidecars[i % sidecars.length]!;
          return i % 3 === 0
            ? l.balance(acct)
            : l.reserve({ accountId: acct, requestId: rid(), amountMicros: 1 * C, ttlMs: MINUTE });
        }),
      );
    } finally {
      await Promise.all(clients.map((c) => c.quit()));
    }
    const log = await entries();
    expect(log.filter((e) => e.op === "period")).toHaveLength(1);
    expect(log.filter((e) => e.op === "expire")).toHaveLength(1);
    const b = await ledger.balance(acct);
    expect(b.availableMicros + b.heldMicros).toBe(100 * C);
    expect(b.heldMicros).toBe(40 * C);
    await expectConsistent(ledger, acct);
  });

  it("a hold made before the reset settles after it: the unused part goes to expired, not the new period", async () => {
    t.clock.set(at("2026-03-05T00:00:00Z"));
    await subscribe();
    t.clock.set(at("2026-04-04T12:00:00Z"));
    const requestId = rid();
    await ledger.reserve({ accountId: acct, requestId, amountMicros: 30 * C, ttlMs: 2 * DAY });
    t.clock.set(at("2026-04-05T12:00:00Z"));
    const s = await ledger.settle({ accountId: acct, requestId }, 10 * C);
    expect(s).toMatchObject({ status: "settled", chargedMicros: 10 * C, releasedMicros: 20 * C });
    const b = await ledger.balance(acct);
    expect(b.availableMicros).toBe(40 * C);
    expect(b.expiredMicros).toBe(10 * C + 20 * C);
    expect(b.period!.usedMicros).toBe(10 * C);
    await expectConsistent(ledger, acct);
  });

  it("top-ups never expire and are drawn only after the allowance", async () => {
    t.clock.set(at("2026-03-05T00:00:00Z"));
    await subscribe({ creditsMicros: 10 * C });
    await give(ledger, acct, 5, "topup");
    const requestId = rid();
    const r = await ledger.reserve({ accountId: acct, requestId, amountMicros: 12 * C, ttlMs: MINUTE });
    expect(r.status === "held" && r.heldFrom.map((d) => d.amountMicros)).toEqual([10 * C, 2 * C]);
    await ledger.settle({ accountId: acct, requestId }, 12 * C);
    t.clock.set(at("2026-05-05T00:00:00Z"));
    const b = await ledger.balance(acct);
    expect(b.buckets.map((x) => [x.kind, x.remainingMicros])).toEqual([["allowance", 10 * C], ["topup", 3 * C]]);
    await expectConsistent(ledger, acct);
  });
});

describe("plan changes", () => {
  beforeEach(() => t.clock.set(at("2026-03-05T00:00:00Z")));

  it("an upgrade applies at once: this period gives the new allowance in total, nothing used is taken back", async () => {
    await subscribe();
    await spend(30);
    const r = await ledger.setSubscription(acct, terms({ planId: "grow", creditsMicros: 150 * C }));
    expect(r.status === "ok" && r.outcome).toBe("changed");
    const s = (r as { subscription: SubscriptionView }).subscription;
    expect(s.planId).toBe("grow");
    expect(s.allowance).toEqual({ grantedMicros: 150 * C, remainingMicros: 120 * C });
    expect((await ledger.balance(acct)).availableMicros).toBe(120 * C);
    await expectConsistent(ledger, acct);
  });

  it("a downgrade waits for the next period; re-stating the current plan cancels it", async () => {
    await subscribe({ planId: "grow", creditsMicros: 150 * C });
    const r = await ledger.setSubscription(acct, terms());
    expect(r.status === "ok" && r.outcome).toBe("scheduled");
    let s = (await ledger.subscription(acct))!;
    expect(s.planId).toBe("grow");
    expect(s.scheduled).toMatchObject({ planId: "base", creditsMicros: 40 * C });
    expect((await ledger.balance(acct)).availableMicros).toBe(150 * C);

    const undo = await ledger.setSubscription(acct, terms({ planId: "grow", creditsMicros: 150 * C }));
    expect(undo.status === "ok" && undo.outcome).toBe("changed");
    expect((await ledger.subscription(acct))!.scheduled).toBeNull();

    await ledger.setSubscription(acct, terms());
    t.clock.set(at("2026-04-05T00:00:00Z"));
    s = (await ledger.subscription(acct))!;
    expect(s.planId).toBe("base");
    expect(s.scheduled).toBeNull();
    expect((await ledger.balance(acct)).availableMicros).toBe(40 * C);
    await expectConsistent(ledger, acct);
  });

  it("added seats add their credits at once; removed seats count from the next period", async () => {
    await subscribe({ planId: "team", creditsMicros: 0, creditsPerSeatMicros: 150 * C, seats: 2 });
    expect((await ledger.balance(acct)).availableMicros).toBe(300 * C);
    await ledger.setSubscription(acct, terms({ planId: "team", creditsMicros: 0, creditsPerSeatMicros: 150 * C, seats: 3 }));
    expect((await ledger.balance(acct)).availableMicros).toBe(450 * C);
    const r = await ledger.setSubscription(acct, terms({ planId: "team", creditsMicros: 0, creditsPerSeatMicros: 150 * C, seats: 1 }));
    expect(r.status === "ok" && r.outcome).toBe("scheduled");
    expect((await ledger.balance(acct)).availableMicros).toBe(450 * C);
    t.clock.set(at("2026-04-05T00:00:00Z"));
    expect((await ledger.balance(acct)).availableMicros).toBe(150 * C);
    expect((await ledger.subscription(acct))!.seats).toBe(1);
    await expectConsistent(ledger, acct);
  });

  it("stating what is in force changes nothing at all", async () => {
    await subscribe({ addons: [{ id: "unit", units: 2, creditsPerUnitMicros: 60 * C, perSeat: false }] });
    const before = await snapshot(t.redis, t.prefix);
    const r = await ledger.setSubscription(acct, terms({ addons: [{ id: "unit", units: 2, creditsPerUnitMicros: 60 * C, perSeat: false }] }));
    expect(r.status === "ok" && r.outcome).toBe("unchanged");
    expect(await snapshot(t.redis, t.prefix)).toEqual(before);
  });

  it("another cadence restarts the billing cycle now", async () => {
    await subscribe({ planId: "personal", creditsMicros: 60 * C });
    await spend(10);
    t.clock.set(at("2026-03-20T00:00:00Z"));
    const r = await ledger.setSubscription(acct, terms({ planId: "personal-annual", period: "year", creditsMicros: 720 * C }));
    expect(r.status === "ok" && r.outcome).toBe("restarted");
    const s = (r as { subscription: SubscriptionView }).subscription;
    expect(iso(s.currentPeriod!.startMs)).toBe("2026-03-20T00:00:00.000Z");
    expect(iso(s.currentPeriod!.endMs)).toBe("2027-03-20T00:00:00.000Z");
    const b = await ledger.balance(acct);
    expect(b.availableMicros).toBe(720 * C);
    expect(b.expiredMicros).toBe(50 * C);
    await expectConsistent(ledger, acct);
  });

  it("a trial gives its credits until it ends, then the first period starts", async () => {
    const s = await subscribe({ status: "trialing", trialCreditsMicros: 20 * C, trialMs: 14 * DAY });
    expect(s.status).toBe("trialing");
    expect(iso(s.trialEndsAtMs!)).toBe("2026-03-19T00:00:00.000Z");
    expect((await ledger.balance(acct)).buckets.map((b) => [b.kind, b.remainingMicros])).toEqual([["trial", 20 * C]]);
    await spend(5);
    t.clock.set(at("2026-03-19T00:00:00Z"));
    const after = (await ledger.subscription(acct))!;
    expect(after.status).toBe("active");
    expect(iso(after.currentPeriod!.startMs)).toBe("2026-03-19T00:00:00.000Z");
    const b = await ledger.balance(acct);
    expect(b.buckets.map((x) => [x.kind, x.remainingMicros])).toEqual([["allowance", 40 * C]]);
    expect(b.expiredMicros).toBe(15 * C);
    const refused = await ledger.setSubscription(acct, terms({ status: "trialing", trialCreditsMicros: 20 * C, trialMs: DAY }));
    expect(refused).toMatchObject({ status: "refused", field: "status" });
    await expectConsistent(ledger, acct);
  });

  it("a past_due subscription gets no new period credits until it is active again", async () => {
    await subscribe();
    await ledger.setSubscription(acct, terms({ status: "past_due" }));
    t.clock.set(at("2026-04-05T00:00:00Z"));
    expect((await ledger.balance(acct)).availableMicros).toBe(0);
    await ledger.setSubscription(acct, terms());
    expect((await ledger.balance(acct)).availableMicros).toBe(40 * C);
    await expectConsistent(ledger, acct);
  });
});

describe("add-ons and the end of a subscription", () => {
  beforeEach(() => t.clock.set(at("2026-03-05T00:00:00Z")));
  const unit = (units: number, perSeat = false) => ({ id: "unit", units, creditsPerUnitMicros: 60 * C, perSeat });

  it("add-on credits arrive at once and renew with the period", async () => {
    await subscribe();
    await ledger.setSubscription(acct, terms({ addons: [unit(2)] }));
    expect((await ledger.balance(acct)).period).toMatchObject({ allowanceMicros: 40 * C, addonMicros: 120 * C });
    t.clock.set(at("2026-04-05T00:00:00Z"));
    expect((await ledger.balance(acct)).availableMicros).toBe(160 * C);
  });

  it("a per-seat add-on gives units × seats, and follows added seats", async () => {
    await subscribe({ seats: 2, addons: [unit(1, true)] });
    expect((await ledger.balance(acct)).period!.addonMicros).toBe(120 * C);
    await ledger.setSubscription(acct, terms({ seats: 3, addons: [unit(1, true)] }));
    expect((await ledger.balance(acct)).period!.addonMicros).toBe(180 * C);
  });

  it("a cancelled add-on keeps its credits to the period's end, then does not renew", async () => {
    await subscribe({ addons: [unit(1)] });
    const r = await ledger.cancelAddon(acct, "unit");
    expect(r.status === "ok" && r.outcome).toBe("addon_cancelled");
    const again = await ledger.cancelAddon(acct, "unit");
    expect(again.status === "ok" && again.outcome).toBe("unchanged");
    expect(await ledger.cancelAddon(acct, "nope")).toEqual({ status: "not_found" });
    expect((await ledger.balance(acct)).availableMicros).toBe(100 * C);
    t.clock.set(at("2026-04-05T00:00:00Z"));
    const b = await ledger.balance(acct);
    expect(b.availableMicros).toBe(40 * C);
    expect((await ledger.subscription(acct))!.addons).toEqual([]);
    await expectConsistent(ledger, acct);
  });

  it("ending now ends the allowance and add-ons (left recorded as expired); top-ups stay", async () => {
    await subscribe({ addons: [unit(1)] });
    await give(ledger, acct, 7, "topup");
    const r = await ledger.endSubscription(acct, "now");
    expect(r.status === "ok" && r.outcome).toBe("ended");
    const b = await ledger.balance(acct);
    expect(b.buckets.map((x) => x.kind)).toEqual(["topup"]);
    expect(b.expiredMicros).toBe(100 * C);
    const again = await ledger.endSubscription(acct, "now");
    expect(again.status === "ok" && again.outcome).toBe("unchanged");
    t.clock.set(at("2026-06-05T00:00:00Z"));
    expect((await ledger.balance(acct)).availableMicros).toBe(7 * C);
    await expectConsistent(ledger, acct);
  });

  it("setting the subscription again takes back an end scheduled for the period's end", async () => {
    await subscribe();
    await ledger.endSubscription(acct, "period_end");
    const r = await ledger.setSubscription(acct, terms());
    expect(r.status === "ok" && r.outcome).toBe("changed");
    expect((await ledger.subscription(acct))!.scheduled).toBeNull();
    t.clock.set(at("2026-04-05T00:00:00Z"));
    expect((await ledger.subscription(acct))!.status).toBe("active");
    expect((await ledger.balance(acct)).availableMicros).toBe(40 * C);
  });

  it("ending at the period's end keeps everything to then and renews nothing", async () => {
    await subscribe({ addons: [unit(1)] });
    const r = await ledger.endSubscription(acct, "period_end");
    expect(r.status === "ok" && r.outcome).toBe("end_scheduled");
    expect((await ledger.balance(acct)).availableMicros).toBe(100 * C);
    t.clock.set(at("2026-04-05T00:00:00Z"));
    const s = (await ledger.subscription(acct))!;
    expect(s.status).toBe("ended");
    expect(s.addons.map((x) => x.nextUnits)).toEqual([0]);
    expect((await ledger.balance(acct)).availableMicros).toBe(0);
    await expectConsistent(ledger, acct);
  });
});

describe("unlimited plans", () => {
  it("never refuse for credits, yet hold, charge and log every generation", async () => {
    t.clock.set(at("2026-03-01T00:00:00Z"));
    await subscribe({ planId: "enterprise", creditsMicros: 0, unlimited: true });
    const big = 1_000_000 * C;
    const requestId = rid();
    const r = await ledger.reserve({ accountId: acct, requestId, amountMicros: big, ttlMs: MINUTE });
    expect(r.status).toBe("held");
    const s = await ledger.settle({ accountId: acct, requestId }, big + 5 * C);
    expect(s).toMatchObject({ status: "settled", chargedMicros: big + 5 * C, uncoveredMicros: 0 });
    const b = await ledger.balance(acct);
    expect(b.period).toMatchObject({ unlimited: true, usedMicros: big + 5 * C });
    expect(b.chargedMicros).toBe(big + 5 * C);
    const log = await entries();
    expect(log.filter((e) => e.why === "unlimited").map((e) => Number(e.amt))).toEqual([big, 5 * C]);
    await expectConsistent(ledger, acct);
  });

  it("an upgrade to unlimited applies at once, a downgrade from it at the next period", async () => {
    t.clock.set(at("2026-03-01T00:00:00Z"));
    await subscribe();
    await ledger.setSubscription(acct, terms({ planId: "enterprise", creditsMicros: 0, unlimited: true }));
    await spend(500);
    const r = await ledger.setSubscription(acct, terms());
    expect(r.status === "ok" && r.outcome).toBe("scheduled");
    await spend(500);
    t.clock.set(at("2026-04-01T00:00:00Z"));
    const b = await ledger.balance(acct);
    expect(b.period).toMatchObject({ unlimited: false, allowanceMicros: 40 * C });
    expect((await ledger.reserve({ accountId: acct, requestId: rid(), amountMicros: 41 * C, ttlMs: MINUTE })).status)
      .toBe("insufficient");
    await expectConsistent(ledger, acct);
  });
});

describe("workspace members", () => {
  beforeEach(() => t.clock.set(at("2026-03-05T00:00:00Z")));

  it("a member over the per-member cap is refused though the pool has credits; the cap resets with the period", async () => {
    await subscribe({ creditsMicros: 1000 * C, memberCapMicros: 50 * C });
    await spend(30, { memberId: "ann" });
    const requestId = rid();
    const held = await ledger.reserve({ accountId: acct, requestId, amountMicros: 15 * C, ttlMs: MINUTE, memberId: "ann" });
    expect(held.status).toBe("held");
    const before = await snapshot(t.redis, t.prefix);
    const refused = await ledger.reserve({ accountId: acct, requestId: rid(), amountMicros: 6 * C, ttlMs: MINUTE, memberId: "ann" });
    expect(refused).toEqual({ status: "member_cap", capMicros: 50 * C, usedMicros: 30 * C, heldMicros: 15 * C });
    expect(await snapshot(t.redis, t.prefix)).toEqual(before);
    expect((await ledger.reserve({ accountId: acct, requestId: rid(), amountMicros: 6 * C, ttlMs: MINUTE, memberId: "bob" })).status).toBe("held");

    // The hold runs out: its credits stop counting against ann.
    t.clock.advance(2 * MINUTE);
    expect((await ledger.balance(acct, "ann")).member).toEqual({ memberId: "ann", heldMicros: 0, usedMicros: 30 * C, capMicros: 50 * C });
    expect((await ledger.reserve({ accountId: acct, requestId: rid(), amountMicros: 20 * C, ttlMs: MINUTE, memberId: "ann" })).status).toBe("held");

    t.clock.set(at("2026-04-05T00:00:00Z"));
    const b = await ledger.balance(acct, "ann");
    expect(b.member).toMatchObject({ usedMicros: 0, heldMicros: 0 });
    await spend(50, { memberId: "ann" });
    await expectConsistent(ledger, acct);
  });

  it("refunds give the member's usage back", async () => {
    await subscribe({ creditsMicros: 1000 * C, memberCapMicros: 50 * C });
    const requestId = await spend(40, { memberId: "ann" });
    await ledger.refund({ accountId: acct, requestId }, "bad output");
    const b = await ledger.balance(acct, "ann");
    expect(b.member).toMatchObject({ usedMicros: 0, heldMicros: 0 });
    expect(b.period!.usedMicros).toBe(0);
  });
});

describe("hours of the anchor", () => {
  it("periods start at the anchor's time of day, in UTC", async () => {
    t.clock.set(at("2026-03-05T23:59:00Z"));
    await subscribe({ anchorMs: at("2026-01-05T23:30:00Z") });
    const s = (await ledger.subscription(acct))!;
    expect(iso(s.currentPeriod!.startMs)).toBe("2026-03-05T23:30:00.000Z");
    t.clock.set(at("2026-04-05T23:29:00Z"));
    expect(iso((await ledger.balance(acct)).period!.startMs)).toBe("2026-03-05T23:30:00.000Z");
    t.clock.advance(HOUR);
    expect(iso((await ledger.balance(acct)).period!.startMs)).toBe("2026-04-05T23:30:00.000Z");
  });
});

describe("on Redis Cluster", () => {
  it("every subscription script keeps its keys in the account's hash slot", async () => {
    const cluster = await startTestCluster();
    const client = new Cluster(cluster.nodes);
    try {
      const clock = new ManualClock(at("2026-03-05T00:00:00Z"));
      const l = new Ledger(client, { keyPrefix: uniquePrefix(), retentionMs: DAY, ledgerMaxEntries: 0, clock });
      await l.loadScripts();
      const r = await l.setSubscription("ws-1", terms({ memberCapMicros: 10 * C, addons: [{ id: "unit", units: 1, creditsPerUnitMicros: C, perSeat: true }] }));
      expect(r.status).toBe("ok");
      expect((await l.reserve({ accountId: "ws-1", requestId: "c-1", amountMicros: 5 * C, ttlMs: MINUTE, memberId: "ann" })).status).toBe("held");
      expect((await l.settle({ accountId: "ws-1", requestId: "c-1" }, 4 * C)).status).toBe("settled");
      expect((await l.cancelAddon("ws-1", "unit")).status).toBe("ok");
      clock.set(at("2026-04-05T00:00:00Z"));
      const b = await l.balance("ws-1", "ann");
      expect(b.period).toMatchObject({ allowanceMicros: 40 * C, addonMicros: 0, usedMicros: 0 });
      expect(b.member).toMatchObject({ usedMicros: 0 });
      expect((await l.endSubscription("ws-1", "now")).status).toBe("ok");
      await expectConsistent(l, "ws-1");
    } finally {
      client.disconnect();
      await cluster.stop();
    }
  });
});

async function events(): Promise<Array<Record<string, string>>> {
  const raw = await t.redis.xrange(ledger.keys.account(acct).events, "-", "+");
  return raw
    .map(([, fields]) => {
      const m: Record<string, string> = {};
      for (let i = 0; i < fields.length; i += 2) m[fields[i] as string] = fields[i + 1] as string;
      return m;
    })
    .filter((e) => e.account === acct);
}

describe("low-credit warnings and events", () => {
  beforeEach(() => t.clock.set(at("2026-03-05T00:00:00Z")));

  it("each threshold fires once per period under many concurrent Reserves from several sidecars, and again after the reset", async () => {
    await subscribe({ creditsMicros: 100 * C });
    const clients = Array.from({ length: 4 }, () => new Redis(env.server.url));
    const replies: string[][] = [];
    try {
      const sidecars = clients.map(
        (c) => new Ledger(c, { keyPrefix: t.prefix, retentionMs: DAY, ledgerMaxEntries: 0, clock: t.clock }),
      );
      await Promise.all(sidecars.map((l) => l.loadScripts()));
      const results = await Promise.all(
        Array.from({ length: 70 }, (_, i) =>
          sidecars[i % 4]!.reserve({ accountId: acct, requestId: rid(), amountMicros: 2 * C, ttlMs: HOUR }),
        ),
      );
      for (const r of results) if (r.status === "held") replies.push(r.warnings);
      expect(results.filter((r) => r.status === "held")).toHaveLength(50);
    } finally {
      await Promise.all(clients.map((c) => c.quit()));
    }
    const crossed = replies.flat().sort();
    expect(crossed).toEqual(["20", "5", "depleted"]);
    // The reply that crossed 20 % is the one that took what is available from 20 to 18.
    expect(replies.filter((w) => w.length > 0)).toHaveLength(3);
    let ev = await events();
    expect(ev.filter((e) => e.type === "threshold").map((e) => e.percent)).toEqual(["20", "5"]);
    expect(ev.filter((e) => e.type === "depleted")).toHaveLength(1);
    expect(ev.find((e) => e.percent === "20")).toMatchObject({ available: String(18 * C), period_credits: String(100 * C) });

    t.clock.set(at("2026-04-05T00:00:00Z"));
    for (let i = 0; i < 41; i++) await spend(2);
    ev = await events();
    expect(ev.filter((e) => e.type === "period_reset")).toHaveLength(1);
    expect(ev.filter((e) => e.type === "threshold").map((e) => e.percent)).toEqual(["20", "5", "20"]);
    await expectConsistent(ledger, acct);
  });

  it("a plan's own thresholds; none but depleted when cleared", async () => {
    await subscribe({ creditsMicros: 100 * C, warnAtPercent: [50] });
    const requestId = rid();
    const r = await ledger.reserve({ accountId: acct, requestId, amountMicros: 60 * C, ttlMs: HOUR });
    expect(r.status === "held" && r.warnings).toEqual(["50"]);
    const s = await ledger.settle({ accountId: acct, requestId }, 100 * C);
    expect(s.status === "settled" && s.warnings).toEqual(["depleted"]);
    await ledger.setSubscription("quiet", terms({ creditsMicros: 10 * C, warnAtPercent: [] }));
    const q = await ledger.reserve({ accountId: "quiet", requestId: rid(), amountMicros: 10 * C, ttlMs: HOUR });
    expect(q.status === "held" && q.warnings).toEqual(["depleted"]);
  });

  it("grants, refunds, expired holds and resets are events in the slot's stream, announced on the channel", async () => {
    const sub = new Redis(env.server.url);
    const heard: string[] = [];
    await sub.subscribe(ledger.keys.eventsChannel());
    sub.on("message", (_channel, message) => heard.push(message));
    try {
      await subscribe();
      await give(ledger, acct, 5, "topup", { grantId: "pack-1" });
      const a = rid();
      await ledger.reserve({ accountId: acct, requestId: a, amountMicros: 3 * C, ttlMs: MINUTE });
      await ledger.refund({ accountId: acct, requestId: a }, "upstream 500");
      await ledger.reserve({ accountId: acct, requestId: rid(), amountMicros: 3 * C, ttlMs: MINUTE });
      t.clock.set(at("2026-04-05T00:00:00Z"));
      await ledger.balance(acct);
      const ev = await events();
      expect(ev.map((e) => e.type)).toEqual(["grant", "refund", "hold_expired", "period_reset"]);
      expect(ev[0]).toMatchObject({ grant: "pack-1", kind: "topup", amt: String(5 * C) });
      expect(ev[1]).toMatchObject({ amt: String(3 * C), reason: "upstream 500" });
      expect(ev[3]).toMatchObject({ plan: "base", period_start: String(at("2026-04-05T00:00:00Z")), missed: "0" });
      for (let i = 0; i < 50 && heard.length < 4; i++) await new Promise((r) => setTimeout(r, 10));
      expect(new Set(heard)).toEqual(new Set([ledger.keys.account(acct).events]));
      // A refused call emits nothing.
      const before = await events();
      expect((await ledger.reserve({ accountId: acct, requestId: rid(), amountMicros: 1000 * C, ttlMs: MINUTE })).status).toBe("insufficient");
      expect(await events()).toEqual(before);
    } finally {
      sub.disconnect();
    }
  });
});
