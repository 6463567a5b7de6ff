// Plans, subscriptions and billing cycles through the service handlers (AdminService + CreditService, in-process),
// one scenario per seed product, each written from its document (../shared/seeds/) and run on the product's
// example catalog (examples/catalogs/<product>.yaml). Real Redis, a ManualClock moved across billing days, and the
// audit invariant checked after every scenario.

import { readFileSync } from "node:fs";
import { type MessageInitShape, create } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import {
  CancelAddonRequestSchema,
  EndSubscriptionRequestSchema,
  EndWhen,
  GetSubscriptionRequestSchema,
  GrantRequestSchema,
  SetSubscriptionRequestSchema,
  SubscriptionChange,
} from "../../src/gen/creditd/v1/admin_service_pb.js";
import {
  GetBalanceRequestSchema,
  RefundRequestSchema,
  ReserveRequestSchema,
  SettleRequestSchema,
} from "../../src/gen/creditd/v1/credit_service_pb.js";
import { PricedRequestSchema, UsageSchema } from "../../src/gen/creditd/v1/pricing_pb.js";
import { BillingPeriod, SubscriptionStatus } from "../../src/gen/creditd/v1/subscription_pb.js";
import { BucketKind } from "../../src/gen/creditd/v1/types_pb.js";
import { adminService } from "../../src/service/admin-service.js";
import { creditService } from "../../src/service/credit-service.js";
import { C, type TestLedger, expectConsistent, openLedger, snapshot } from "../support/ledger.js";
import { testPricer } from "../support/pricing.js";
import { uniquePrefix, useTestRedis } from "../support/redis.js";
import { rejection } from "../support/rejection.js";

const env = useTestRedis();
const ctx = { signal: new AbortController().signal };
const WS = "ws-1";

type Product = "funnel-builder" | "landing-page-builder" | "video-studio" | "crm-assistant" | "chatbot-platform";
const catalogText = (name: Product) => readFileSync(new URL(`../../examples/catalogs/${name}.yaml`, import.meta.url), "utf8");

// One pricer per catalog for the whole file (its registry on a prefix of its own); one ledger per test.
const pricers = new Map<Product, ReturnType<typeof testPricer>>();
afterAll(async () => {
  for (const p of pricers.values()) await p.close();
});

let t: TestLedger;
let credit: ReturnType<typeof creditService>;
let admin: ReturnType<typeof adminService>;

beforeEach(async () => {
  t = await openLedger(env.redis);
});

function serve(product: Product): void {
  let p = pricers.get(product);
  if (!p) {
    p = testPricer(env.redis, uniquePrefix(), { catalogSource: catalogText(product) });
    pricers.set(product, p);
  }
  const pricer = p.pricer;
  credit = creditService({ ledger: t.ledger, pricer, holdTtlDefaultSeconds: 600, holdTtlMaxSeconds: 3600 });
  admin = adminService({ ledger: t.ledger, catalog: () => pricer.catalog });
}

// ─── helpers ────────────────────────────────────────────────────────────────────────────────────

/** Credits → micros on the wire. */
const cr = (credits: number): bigint => BigInt(Math.round(credits * C));
const at = (isoText: string): number => Date.parse(isoText);
const day = (ts: Timestamp | undefined): string | undefined => (ts ? timestampDate(ts).toISOString() : undefined);
const setClock = (isoText: string) => t.clock.set(at(isoText));

interface SetInit {
  planId: string;
  seats?: number;
  addons?: Array<{ addonId: string; units: number }>;
  status?: SubscriptionStatus;
  memberCapMicros?: bigint;
  /** The billing anchor, ISO. */
  anchor?: string;
}
async function subscribe(init: SetInit, accountId = WS) {
  const { anchor, ...rest } = init;
  return admin.setSubscription(
    create(SetSubscriptionRequestSchema, {
      accountId,
      ...rest,
      ...(anchor ? { billingAnchor: timestampFromMs(at(anchor)) } : {}),
    }),
    ctx,
  );
}
const getSub = async (accountId = WS) =>
  (await admin.getSubscription(create(GetSubscriptionRequestSchema, { accountId }), ctx)).subscription!;
const cancelAddon = (addonId: string, accountId = WS) =>
  admin.cancelAddon(create(CancelAddonRequestSchema, { accountId, addonId }), ctx);
const endSub = (when: EndWhen, accountId = WS) =>
  admin.endSubscription(create(EndSubscriptionRequestSchema, { accountId, when }), ctx);
const balance = (memberId = "", accountId = WS) =>
  credit.getBalance(create(GetBalanceRequestSchema, { accountId, memberId }), ctx);
let packs = 0;
const buyPack = (credits: number, accountId = WS) =>
  admin.grant(
    create(GrantRequestSchema, { accountId, grantId: `pack-${++packs}`, amountMicros: cr(credits), kind: BucketKind.TOPUP }),
    ctx,
  );

let n = 0;
const reserve = (credits: number, opts: { memberId?: string; accountId?: string; requestId?: string } = {}) =>
  credit.reserve(
    create(ReserveRequestSchema, {
      accountId: opts.accountId ?? WS,
      requestId: opts.requestId ?? `req-${++n}`,
      cost: { case: "amountMicros", value: cr(credits) },
      memberId: opts.memberId ?? "",
    }),
    ctx,
  );
const settle = (reservationId: string, credits: number) =>
  credit.settle(create(SettleRequestSchema, { reservationId, cost: { case: "chargeMicros", value: cr(credits) } }), ctx);
/** One generation that costs `credits`: Reserve, then Settle with the same amount. Returns the reservation id. */
async function spend(credits: number, opts: { memberId?: string; accountId?: string } = {}): Promise<string> {
  const r = await reserve(credits, opts);
  const s = await settle(r.reservationId, credits);
  expect(s.chargedMicros).toBe(cr(credits));
  return r.reservationId;
}
const reservePriced = (p: MessageInitShape<typeof PricedRequestSchema>, accountId = WS) =>
  credit.reserve(
    create(ReserveRequestSchema, {
      accountId,
      requestId: `req-${++n}`,
      cost: { case: "priced", value: create(PricedRequestSchema, p) },
    }),
    ctx,
  );
const settleUsage = (reservationId: string, usage: MessageInitShape<typeof UsageSchema> = {}) =>
  credit.settle(create(SettleRequestSchema, { reservationId, cost: { case: "usage", value: create(UsageSchema, usage) } }), ctx);


/** [kind, remaining credits] of every live bucket, in draw order. */
async function buckets(accountId = WS): Promise<Array<[string, number]>> {
  const b = await balance("", accountId);
  return b.buckets.map((x) => [BucketKind[x.kind].toLowerCase(), Number(x.remainingMicros) / C]);
}
const available = async (accountId = WS) => Number((await balance("", accountId)).availableMicros) / C;

// ─── Perspective (funnel builder) ───────────────────────────────────────────────────────────────

describe("Perspective (funnel-builder.yaml)", () => {
  beforeEach(() => serve("funnel-builder"));

  it.each([
    ["base", 40, false], ["grow", 150, false], ["expand", 500, false], ["scale", 1500, false],
    ["pro", 40, true], ["business", 150, true], ["advanced", 500, true], ["individual", 500, true], ["volume", 1500, true],
  ] as const)("plan %s gives %d AI credits a month (legacy: %s)", async (planId, credits, _legacy) => {
    setClock("2026-03-05T00:00:00Z");
    const r = await subscribe({ planId });
    expect(r.change).toBe(SubscriptionChange.STARTED);
    expect(r.subscription).toMatchObject({ planId, period: BillingPeriod.MONTH, seats: 1, unlimited: false });
    expect(r.subscription!.allowancePerPeriodMicros).toBe(cr(credits));
    const b = await balance();
    expect(b.availableMicros).toBe(cr(credits));
    expect(b.period).toMatchObject({ planId, allowanceMicros: cr(credits), usedMicros: 0n, status: SubscriptionStatus.ACTIVE });
    await expectConsistent(t.ledger, WS);
  });

  it("a monthly plan resets on the 5th: usage, allowance and the next reset date shown; no rollover", async () => {
    setClock("2026-03-12T10:00:00Z");
    // Signed up on the 5th of November: every month renews (and refreshes) on the 5th.
    const started = await subscribe({ planId: "base", anchor: "2025-11-05T00:00:00Z" });
    expect(day(started.subscription!.periodStart)).toBe("2026-03-05T00:00:00.000Z");
    expect(day(started.subscription!.periodEnd)).toBe("2026-04-05T00:00:00.000Z");

    // A typical AI funnel (3-10 credits) and a short AI Block, priced by the catalog (2,000 in / 800 out → 2 credits).
    await spend(6);
    await spend(3);
    const block = await reservePriced({ operation: "ai.block", model: "gpt-4.1", input: { case: "inputTokens", value: 2000n }, maxOutputTokens: 800n });
    expect(block.heldMicros).toBe(cr(2));
    expect((await settleUsage(block.reservationId, { outputTokens: 800n })).chargedMicros).toBe(cr(2));

    // Settings → Subscription → AI Credits: usage this billing month, the allowance, the next reset date.
    let b = await balance();
    expect(b.availableMicros).toBe(cr(29));
    expect(b.period).toMatchObject({ planId: "base", usedMicros: cr(11), allowanceMicros: cr(40), unlimited: false });
    expect(day(b.period!.periodEnd)).toBe("2026-04-05T00:00:00.000Z");

    t.clock.set(at("2026-04-05T00:00:00Z") - 1);
    expect(await available()).toBe(29);
    setClock("2026-04-05T00:00:00Z");
    b = await balance();
    expect(b.availableMicros).toBe(cr(40)); // not 69: nothing rolls over
    expect(b.expiredMicros).toBe(cr(29));
    expect(b.period).toMatchObject({ usedMicros: 0n, allowanceMicros: cr(40) });
    expect(day(b.period!.periodStart)).toBe("2026-04-05T00:00:00.000Z");
    expect(day(b.period!.periodEnd)).toBe("2026-05-05T00:00:00.000Z");

    // Out of credits: AI generation pauses until the reset.
    await spend(40);
    const r = await rejection(reserve(1));
    expect(r.code).toBe(Code.ResourceExhausted);
    expect(r.info).toMatchObject({ reason: "INSUFFICIENT_CREDITS", metadata: { available_micros: "0", required_micros: String(C) } });
    setClock("2026-05-05T00:00:00Z");
    expect(await available()).toBe(40);
    await expectConsistent(t.ledger, WS);
  });

  it("a yearly-billed plan still resets every month on the billing day (an alias names it)", async () => {
    setClock("2026-01-05T08:00:00Z");
    const r = await subscribe({ planId: "base-annual" });
    expect(r.subscription).toMatchObject({ planId: "base-yearly", period: BillingPeriod.MONTH });
    expect(day(r.subscription!.periodEnd)).toBe("2026-02-05T08:00:00.000Z");
    await spend(25);

    const seen: Array<[string | undefined, number, string]> = [];
    for (const now of ["2026-02-05T08:00:00Z", "2026-03-04T23:00:00Z", "2026-03-05T08:00:00Z", "2027-01-05T08:00:00Z"]) {
      setClock(now);
      const b = await balance();
      seen.push([day(b.period!.periodEnd), Number(b.availableMicros) / C, now]);
      if (now === "2026-03-04T23:00:00Z") await spend(40);
    }
    expect(seen).toEqual([
      ["2026-03-05T08:00:00.000Z", 40, "2026-02-05T08:00:00Z"],
      ["2026-03-05T08:00:00.000Z", 40, "2026-03-04T23:00:00Z"],
      ["2026-04-05T08:00:00.000Z", 40, "2026-03-05T08:00:00Z"],
      // Past the yearly renewal: still the month's 40, not a year's worth.
      ["2027-02-05T08:00:00.000Z", 40, "2027-01-05T08:00:00Z"],
    ]);
    // 15 left in January expired; February's 40 all used; March's 40 expired once, however many months were missed.
    expect((await balance()).expiredMicros).toBe(cr(15 + 40));
    await expectConsistent(t.ledger, WS);
  });

  it("extra AI credits are a recurring add-on: at once, then renewed every month until cancelled", async () => {
    setClock("2026-03-05T00:00:00Z");
    await subscribe({ planId: "grow" });
    await spend(140);
    const more = await subscribe({ planId: "grow", addons: [{ addonId: "extra_credits", units: 2 }] });
    expect(more.change).toBe(SubscriptionChange.APPLIED);
    expect(more.subscription!.addons).toMatchObject([{ addonId: "extra_credits", units: 2, nextUnits: 2, creditsPerUnitMicros: cr(50), perSeat: false }]);
    let b = await balance();
    expect(b.availableMicros).toBe(cr(10 + 100));
    expect(b.period).toMatchObject({ allowanceMicros: cr(150), addonMicros: cr(100), usedMicros: cr(140) });
    // The allowance is drawn first, then the add-on credits.
    await spend(30);
    expect(await buckets()).toEqual([["allowance", 0], ["addon", 80]]);

    setClock("2026-04-05T00:00:00Z");
    b = await balance();
    expect(b.availableMicros).toBe(cr(250));
    expect(b.period).toMatchObject({ allowanceMicros: cr(150), addonMicros: cr(100), usedMicros: 0n });
    expect(b.expiredMicros).toBe(cr(80));

    // Fewer units: from the next month on.
    const fewer = await subscribe({ planId: "grow", addons: [{ addonId: "extra_credits", units: 1 }] });
    expect(fewer.subscription!.addons).toMatchObject([{ units: 2, nextUnits: 1 }]);
    expect(await available()).toBe(250);
    setClock("2026-05-05T00:00:00Z");
    expect(await available()).toBe(200);
    await expectConsistent(t.ledger, WS);
  });

  it("add-ons are refused on legacy plans (INVALID_ARGUMENT naming addons[0].addon_id), nothing changed", async () => {
    setClock("2026-03-05T00:00:00Z");
    for (const planId of ["pro", "business", "advanced", "individual", "volume", "volume-yearly"]) {
      const r = await rejection(subscribe({ planId, addons: [{ addonId: "extra_credits", units: 1 }] }));
      expect(r.code).toBe(Code.InvalidArgument);
      expect(r.message).toMatch(/^addons\[0\]\.addon_id: plan [a-z-]+ has no add-on "extra_credits" \(it has none\)$/);
      expect(r.info).toMatchObject({ reason: "INVALID_FIELD", metadata: { field: "addons[0].addon_id" } });
    }
    // An existing legacy customer asking for extra credits: refused, the subscription as it was.
    await subscribe({ planId: "business" });
    await spend(20);
    const before = await snapshot(env.redis, t.prefix);
    const r = await rejection(subscribe({ planId: "business", addons: [{ addonId: "extra_credits", units: 1 }] }));
    expect(r.info).toMatchObject({ metadata: { field: "addons[0].addon_id" } });
    expect(await snapshot(env.redis, t.prefix)).toEqual(before);
    expect((await getSub()).addons).toEqual([]);
    await expectConsistent(t.ledger, WS);
  });

  it("Scale's 1,500 credits are pooled across the workspace, whatever the seats", async () => {
    setClock("2026-03-05T00:00:00Z");
    const r = await subscribe({ planId: "scale", seats: 12 });
    expect(r.subscription!.allowancePerPeriodMicros).toBe(cr(1500));
    await spend(700, { memberId: "ann" });
    await spend(750, { memberId: "bob" });
    const b = await balance("ann");
    expect(b.availableMicros).toBe(cr(50));
    expect(b.period!.usedMicros).toBe(cr(1450));
    expect(b.member).toMatchObject({ memberId: "ann", usedMicros: cr(700), heldMicros: 0n, capMicros: 0n });
    expect((await balance("bob")).member!.usedMicros).toBe(cr(750));
    // The pool is shared: bob takes what is left, then everyone waits for the reset.
    await spend(50, { memberId: "bob" });
    expect((await rejection(reserve(1, { memberId: "ann" }))).info).toMatchObject({ reason: "INSUFFICIENT_CREDITS" });
    setClock("2026-04-05T00:00:00Z");
    expect((await balance("ann")).member!.usedMicros).toBe(0n);
    expect(await available()).toBe(1500);
    await expectConsistent(t.ledger, WS);
  });
});

// ─── Landing-page builder ───────────────────────────────────────────────────────────────────────

describe("Landing-page builder (landing-page-builder.yaml)", () => {
  beforeEach(() => serve("landing-page-builder"));

  it.each([["free", 250], ["starter", 1000], ["pro", 5000]] as const)("%s gives %d credits a month, reset without rollover", async (planId, credits) => {
    setClock("2026-03-20T00:00:00Z");
    const r = await subscribe({ planId });
    expect(r.subscription!.allowancePerPeriodMicros).toBe(cr(credits));
    await spend(credits / 2);
    setClock("2026-04-20T00:00:00Z");
    const b = await balance();
    expect(b.availableMicros).toBe(cr(credits));
    expect(b.expiredMicros).toBe(cr(credits / 2));
    await expectConsistent(t.ledger, WS);
  });

  it("10 sections + 15 rewrites + 3 images at 1K = 205 credits fits Free; a 60-credit 2K image is then refused", async () => {
    setClock("2026-03-20T00:00:00Z");
    await subscribe({ planId: "free" });
    const work: Array<MessageInitShape<typeof PricedRequestSchema>> = [
      ...Array.from({ length: 10 }, () => ({ operation: "section.generate" })),
      ...Array.from({ length: 15 }, () => ({ operation: "content.rewrite" })),
      ...Array.from({ length: 3 }, () => ({ operation: "image.generate", image: { width: 1024, height: 1024 } })),
    ];
    let charged = 0n;
    for (const p of work) {
      const r = await reservePriced(p);
      const s = await settleUsage(r.reservationId);
      expect(s.chargedMicros).toBe(r.heldMicros);
      charged += s.chargedMicros;
    }
    expect(charged).toBe(cr(205));
    // An avatar from the library is free, and still recorded.
    const avatar = await reservePriced({ operation: "avatar.select" });
    expect((await settleUsage(avatar.reservationId)).chargedMicros).toBe(0n);

    const b = await balance();
    expect(b.availableMicros).toBe(cr(45));
    expect(b.period).toMatchObject({ planId: "free", usedMicros: cr(205), allowanceMicros: cr(250) });

    // The operation is cancelled: the error shows the balance and the credits required; nothing is held.
    const before = await snapshot(env.redis, t.prefix);
    const r = await rejection(reservePriced({ operation: "image.generate", image: { width: 2048, height: 2048 } }));
    expect(r.code).toBe(Code.ResourceExhausted);
    expect(r.message).toBe("insufficient credits: available 45, required 60");
    expect(r.info).toMatchObject({ reason: "INSUFFICIENT_CREDITS", metadata: { available_micros: String(45 * C), required_micros: String(60 * C) } });
    expect(await snapshot(env.redis, t.prefix)).toEqual(before);

    // "Upgrade when needed": Free → Starter applies at once (1,000 this month in total, 205 of it used).
    const up = await subscribe({ planId: "starter" });
    expect(up.change).toBe(SubscriptionChange.APPLIED);
    expect(up.subscription).toMatchObject({ allowanceGrantedMicros: cr(1000), allowanceRemainingMicros: cr(795), usedMicros: cr(205) });
    const image = await reservePriced({ operation: "image.generate", image: { width: 2048, height: 2048 } });
    expect((await settleUsage(image.reservationId)).chargedMicros).toBe(cr(60));
    expect(await available()).toBe(735);
    await expectConsistent(t.ledger, WS);
  });
});

// ─── AI Studios (video studio) ──────────────────────────────────────────────────────────────────

describe("AI Studios (video-studio.yaml)", () => {
  beforeEach(() => serve("video-studio"));

  it.each([
    ["free", 1, 16], ["personal", 1, 60], ["team", 1, 150], ["team", 4, 600],
  ] as const)("monthly %s with %d seat(s) gives %d credits, refreshed every month", async (planId, seats, credits) => {
    setClock("2026-03-10T00:00:00Z");
    const r = await subscribe({ planId, seats });
    expect(r.subscription).toMatchObject({ period: BillingPeriod.MONTH, seats });
    expect(r.subscription!.allowancePerPeriodMicros).toBe(cr(credits));
    await spend(credits);
    setClock("2026-04-10T00:00:00Z");
    expect(await available()).toBe(credits);
    await expectConsistent(t.ledger, WS);
  });

  it("annual Personal grants 720 upfront, refreshed on the annual renewal, not monthly", async () => {
    setClock("2026-02-10T00:00:00Z");
    const r = await subscribe({ planId: "personal-annual" });
    expect(r.subscription).toMatchObject({ planId: "personal-annual", period: BillingPeriod.YEAR });
    expect(r.subscription!.allowancePerPeriodMicros).toBe(cr(720));
    expect(day(r.subscription!.periodEnd)).toBe("2027-02-10T00:00:00.000Z");
    // A 10-second premium video: 10 credits; a basic one is free.
    const video = await reservePriced({ operation: "video.generate", video: { seconds: 10 } });
    expect((await settleUsage(video.reservationId)).chargedMicros).toBe(cr(10));
    await spend(690);

    setClock("2026-03-10T00:00:00Z"); // a month on: no monthly refresh
    let b = await balance();
    expect(b.availableMicros).toBe(cr(20));
    expect(day(b.period!.periodEnd)).toBe("2027-02-10T00:00:00.000Z");
    setClock("2027-02-09T23:59:59Z");
    expect(await available()).toBe(20);
    setClock("2027-02-10T00:00:00Z");
    b = await balance();
    expect(b.availableMicros).toBe(cr(720));
    expect(b.expiredMicros).toBe(cr(20));
    expect(b.period).toMatchObject({ usedMicros: 0n, allowanceMicros: cr(720) });
    expect(day(b.period!.periodEnd)).toBe("2028-02-10T00:00:00.000Z");
    await expectConsistent(t.ledger, WS);
  });

  it("annual Team grants 1,800 per seat upfront; its shared add-on unit is a year's 2,400", async () => {
    setClock("2026-06-01T00:00:00Z");
    const r = await subscribe({ planId: "team-yearly", seats: 3, addons: [{ addonId: "unit", units: 1 }] });
    expect(r.subscription).toMatchObject({ planId: "team-annual", seats: 3, period: BillingPeriod.YEAR });
    const b = await balance();
    expect(b.period).toMatchObject({ allowanceMicros: cr(5400), addonMicros: cr(2400) });
    expect(b.availableMicros).toBe(cr(7800));
    setClock("2026-12-01T00:00:00Z");
    expect(await available()).toBe(7800);
    await expectConsistent(t.ledger, WS);
  });

  it("add-on units: 60 per user on Personal, 200 shared on Team", async () => {
    setClock("2026-03-10T00:00:00Z");
    await subscribe({ planId: "personal", addons: [{ addonId: "unit", units: 2 }] });
    expect((await balance()).period).toMatchObject({ allowanceMicros: cr(60), addonMicros: cr(120) });

    await subscribe({ planId: "team", seats: 3, addons: [{ addonId: "unit", units: 2 }] }, "ws-team");
    const b = await balance("", "ws-team");
    expect(b.period).toMatchObject({ allowanceMicros: cr(450), addonMicros: cr(400) }); // not × 3 seats
    // Units bought mid-period: their credits are applied immediately.
    const more = await subscribe({ planId: "team", seats: 3, addons: [{ addonId: "unit", units: 3 }] }, "ws-team");
    expect(more.change).toBe(SubscriptionChange.APPLIED);
    expect(more.subscription).toMatchObject({ addonGrantedMicros: cr(600), addonRemainingMicros: cr(600) });
    setClock("2026-04-10T00:00:00Z");
    expect(await available("ws-team")).toBe(450 + 600);
    expect(await available()).toBe(180);
    await expectConsistent(t.ledger, WS);
    await expectConsistent(t.ledger, "ws-team");
  });

  it("an add-on cancelled mid-period keeps its credits to the period's end, then does not renew", async () => {
    setClock("2026-03-10T00:00:00Z");
    await subscribe({ planId: "team", seats: 2, addons: [{ addonId: "unit", units: 1 }] });
    await spend(50);
    setClock("2026-03-20T00:00:00Z");
    const c = await cancelAddon("unit");
    expect(c.changed).toBe(true);
    expect(c.subscription!.addons).toMatchObject([{ addonId: "unit", units: 1, nextUnits: 0 }]);
    expect((await cancelAddon("unit")).changed).toBe(false);
    expect(await available()).toBe(300 + 200 - 50);
    await spend(400); // the cancelled unit's credits are still spendable

    setClock("2026-04-10T00:00:00Z");
    const b = await balance();
    expect(b.availableMicros).toBe(cr(300));
    expect(b.period).toMatchObject({ allowanceMicros: cr(300), addonMicros: 0n });
    expect(b.expiredMicros).toBe(cr(50)); // no rollover of the rest
    expect((await getSub()).addons).toEqual([]);
    // The add-on is gone: cancelling it again is NOT_FOUND.
    expect(await rejection(cancelAddon("unit"))).toMatchObject({ code: Code.NotFound, info: { reason: "SUBSCRIPTION_NOT_FOUND" } });
    await expectConsistent(t.ledger, WS);
  });

  it("add-ons end with the main subscription (EndSubscription now)", async () => {
    setClock("2026-03-10T00:00:00Z");
    await subscribe({ planId: "personal", addons: [{ addonId: "unit", units: 2 }] });
    await spend(100);
    const e = await endSub(EndWhen.NOW);
    expect(e.changed).toBe(true);
    expect(e.subscription).toMatchObject({ status: SubscriptionStatus.ENDED, addonRemainingMicros: 0n, allowanceRemainingMicros: 0n });
    expect(e.subscription!.periodEnd).toBeUndefined();
    expect(e.subscription!.endedAt).toBeDefined();
    expect(e.subscription!.addons.every((a) => a.nextUnits === 0)).toBe(true);
    const b = await balance();
    expect(b.availableMicros).toBe(0n);
    expect(b.expiredMicros).toBe(cr(80)); // what was left of the allowance and the add-on
    expect(b.period?.status).toBe(SubscriptionStatus.ENDED);
    expect((await rejection(reserve(1))).info).toMatchObject({ reason: "INSUFFICIENT_CREDITS" });
    expect((await endSub(EndWhen.NOW)).changed).toBe(false);
    expect(await rejection(cancelAddon("unit"))).toMatchObject({ code: Code.NotFound, info: { reason: "SUBSCRIPTION_NOT_FOUND" } });
    setClock("2026-05-10T00:00:00Z");
    expect(await available()).toBe(0); // nothing renews
    await expectConsistent(t.ledger, WS);
  });

  it("EndSubscription at the period's end keeps every credit to then; nothing renews", async () => {
    setClock("2026-03-10T00:00:00Z");
    await subscribe({ planId: "team", seats: 2, addons: [{ addonId: "unit", units: 1 }] });
    const e = await endSub(EndWhen.PERIOD_END);
    expect(e.changed).toBe(true);
    expect(e.subscription!.status).toBe(SubscriptionStatus.ACTIVE);
    expect(e.subscription!.scheduled).toMatchObject({ endsAtPeriodEnd: true });
    expect(day(e.subscription!.scheduled!.effectiveAt)).toBe("2026-04-10T00:00:00.000Z");
    expect((await endSub(EndWhen.PERIOD_END)).changed).toBe(false);
    expect(await available()).toBe(500);
    setClock("2026-04-10T00:00:00Z");
    const s = await getSub();
    expect(s.status).toBe(SubscriptionStatus.ENDED);
    expect(s.addons.every((a) => a.nextUnits === 0)).toBe(true);
    expect(await available()).toBe(0);
    await expectConsistent(t.ledger, WS);
  });
});

// ─── AI Employee (CRM assistant) ────────────────────────────────────────────────────────────────

describe("AI Employee (crm-assistant.yaml)", () => {
  beforeEach(() => serve("crm-assistant"));

  it("the monthly allowance is used first, then top-ups; both empty → refused; top-ups survive resets", async () => {
    setClock("2026-03-01T09:00:00Z");
    await subscribe({ planId: "starter" });
    await buyPack(500);
    await spend(990);
    // A knowledge sync (25 credits): the allowance's last 10, then 15 from the top-up.
    const sync = await reservePriced({ operation: "knowledge.sync" });
    expect(sync.heldMicros).toBe(cr(25));
    expect(sync.heldFrom.map((d) => d.amountMicros)).toEqual([cr(10), cr(15)]);
    await settleUsage(sync.reservationId);
    expect(await buckets()).toEqual([["allowance", 0], ["topup", 485]]);

    setClock("2026-04-01T09:00:00Z");
    let b = await balance();
    expect(b.availableMicros).toBe(cr(1485));
    expect(b.expiredMicros).toBe(0n);
    expect(await buckets()).toEqual([["allowance", 1000], ["topup", 485]]);

    // Empty both: replies pause until the reset or a new pack.
    await spend(1485);
    const reply = reservePriced({ operation: "ai.reply" });
    const r = await rejection(reply);
    expect(r.code).toBe(Code.ResourceExhausted);
    expect(r.info).toMatchObject({ reason: "INSUFFICIENT_CREDITS", metadata: { available_micros: "0", required_micros: String(C) } });
    await buyPack(100);
    const ok = await reservePriced({ operation: "ai.reply" });
    await settleUsage(ok.reservationId);

    // Months later, untouched: the allowance resets, the top-up is still there.
    setClock("2026-09-15T00:00:00Z");
    b = await balance();
    // The first pack is spent (its bucket stays, empty); the second has 99 left.
    expect(await buckets()).toEqual([["allowance", 1000], ["topup", 0], ["topup", 99]]);
    expect(b.period).toMatchObject({ usedMicros: 0n, allowanceMicros: cr(1000) });
    expect(day(b.period!.periodStart)).toBe("2026-09-01T09:00:00.000Z");
    await expectConsistent(t.ledger, WS);
  });

  it("the 14-day trial: trial credits, then the first period starts when the trial ends", async () => {
    setClock("2026-03-01T12:00:00Z");
    const r = await subscribe({ planId: "professional", status: SubscriptionStatus.TRIALING });
    expect(r.change).toBe(SubscriptionChange.STARTED);
    expect(r.subscription).toMatchObject({ status: SubscriptionStatus.TRIALING, trialGrantedMicros: cr(250) });
    expect(day(r.subscription!.trialEndsAt)).toBe("2026-03-15T12:00:00.000Z");
    expect(day(r.subscription!.periodEnd)).toBe("2026-03-15T12:00:00.000Z");
    let b = await balance();
    expect(b.period).toMatchObject({ status: SubscriptionStatus.TRIALING, trialMicros: cr(250), allowanceMicros: 0n });
    // A top-up bought during the trial is drawn only after the trial credits.
    await buyPack(40);
    await spend(260);
    expect(await buckets()).toEqual([["trial", 0], ["topup", 30]]);

    setClock("2026-03-15T12:00:00Z");
    const s = await getSub();
    expect(s.status).toBe(SubscriptionStatus.ACTIVE);
    expect(s.trialEndsAt).toBeUndefined();
    expect(day(s.periodStart)).toBe("2026-03-15T12:00:00.000Z");
    expect(day(s.periodEnd)).toBe("2026-04-15T12:00:00.000Z");
    b = await balance();
    expect(await buckets()).toEqual([["allowance", 5000], ["topup", 30]]);
    expect(b.period).toMatchObject({ status: SubscriptionStatus.ACTIVE, allowanceMicros: cr(5000), trialMicros: 0n });
    await expectConsistent(t.ledger, WS);
  });

  it("a trial cut short by paying: the unused trial credits expire, the first period starts now", async () => {
    setClock("2026-03-01T12:00:00Z");
    await subscribe({ planId: "starter", status: SubscriptionStatus.TRIALING });
    await spend(50);
    setClock("2026-03-05T00:00:00Z");
    const r = await subscribe({ planId: "starter" });
    expect(r.change).toBe(SubscriptionChange.ACTIVATED);
    expect(r.subscription!.status).toBe(SubscriptionStatus.ACTIVE);
    const b = await balance();
    expect(b.availableMicros).toBe(cr(1000));
    expect(b.expiredMicros).toBe(cr(200));
    await expectConsistent(t.ledger, WS);
  });
});

// ─── CleverAI (chatbot platform) ────────────────────────────────────────────────────────────────

describe("CleverAI (chatbot-platform.yaml)", () => {
  beforeEach(() => serve("chatbot-platform"));

  it("Free 100 and Pro 5,000 a month; Custom is unlimited", async () => {
    setClock("2026-03-01T00:00:00Z");
    expect((await subscribe({ planId: "free" }, "a")).subscription!.allowancePerPeriodMicros).toBe(cr(100));
    expect((await subscribe({ planId: "pro" }, "b")).subscription!.allowancePerPeriodMicros).toBe(cr(5000));
    const u = (await subscribe({ planId: "enterprise" }, "c")).subscription!;
    expect(u).toMatchObject({ unlimited: true, allowancePerPeriodMicros: 0n });
    expect((await balance("", "c")).period).toMatchObject({ unlimited: true, usedMicros: 0n });
  });

  it("packs of 1,000 and 5,000 never expire; monthly credits reset on the first day of the cycle, no rollover", async () => {
    setClock("2026-03-17T15:00:00Z");
    await subscribe({ planId: "free" });
    await buyPack(1000);
    await buyPack(5000);
    // A chatbot message on gpt-4o-mini: 2,000 tokens in, 300 out → 0.048, rounded up to 0.05 credit.
    const chat = await reservePriced({ operation: "chat", model: "gpt-4o-mini", input: { case: "inputTokens", value: 2000n }, maxOutputTokens: 300n });
    expect(chat.heldMicros).toBe(cr(0.05));
    expect((await settleUsage(chat.reservationId, { outputTokens: 300n })).chargedMicros).toBe(cr(0.05));
    await spend(149.95);
    expect(await buckets()).toEqual([["allowance", 0], ["topup", 950], ["topup", 5000]]);

    setClock("2026-04-17T15:00:00Z");
    let b = await balance();
    expect(await buckets()).toEqual([["allowance", 100], ["topup", 950], ["topup", 5000]]);
    expect(b.period).toMatchObject({ usedMicros: 0n, allowanceMicros: cr(100) });
    expect(day(b.period!.periodStart)).toBe("2026-04-17T15:00:00.000Z");
    await spend(60);

    // Three cycles untouched: one reset, the 40 left expired, the packs as they were.
    setClock("2026-07-20T00:00:00Z");
    b = await balance();
    expect(await buckets()).toEqual([["allowance", 100], ["topup", 950], ["topup", 5000]]);
    expect(b.expiredMicros).toBe(cr(40));
    expect(day(b.period!.periodStart)).toBe("2026-07-17T15:00:00.000Z");
    await expectConsistent(t.ledger, WS);
  });

  it("the unlimited plan never refuses, yet GetBalance shows true usage; packs stay untouched", async () => {
    setClock("2026-03-01T00:00:00Z");
    await subscribe({ planId: "enterprise" });
    await buyPack(1000);
    const big = 2_000_000;
    const r = await reserve(big);
    expect(r.heldMicros).toBe(cr(big));
    const s = await settle(r.reservationId, big + 5);
    expect(s).toMatchObject({ chargedMicros: cr(big + 5), uncoveredMicros: 0n });
    const chat = await reservePriced({ operation: "chat", model: "gpt-4o", input: { case: "inputTokens", value: 100_000n }, maxOutputTokens: 4096n });
    await settleUsage(chat.reservationId, { outputTokens: 1000n });
    const b = await balance();
    // 100,000 × 250 + 1,000 × 1,000 per 1M → 26 credits.
    expect(b.period).toMatchObject({ unlimited: true, usedMicros: cr(big + 5 + 26) });
    expect(b.chargedMicros).toBe(cr(big + 5 + 26));
    expect(b.buckets.find((x) => x.kind === BucketKind.TOPUP)?.remainingMicros).toBe(cr(1000));

    // A refund gives the usage back; the next cycle starts from zero.
    await credit.refund(create(RefundRequestSchema, { reservationId: r.reservationId, reason: "bad output" }), ctx);
    expect((await balance()).period!.usedMicros).toBe(cr(26));
    setClock("2026-04-01T00:00:00Z");
    expect((await balance()).period).toMatchObject({ unlimited: true, usedMicros: 0n });
    await expectConsistent(t.ledger, WS);
  });
});

// ─── Plan changes, idempotence, aliases, member caps ────────────────────────────────────────────

describe("plan changes mid-period", () => {
  it("an upgrade applies at once: this period gives the new allowance minus what was used", async () => {
    serve("funnel-builder");
    setClock("2026-03-05T00:00:00Z");
    await subscribe({ planId: "base" });
    await spend(30);
    setClock("2026-03-20T00:00:00Z");
    const r = await subscribe({ planId: "grow" });
    expect(r.change).toBe(SubscriptionChange.APPLIED);
    expect(r.subscription).toMatchObject({
      planId: "grow", usedMicros: cr(30), allowanceGrantedMicros: cr(150), allowanceRemainingMicros: cr(120),
    });
    expect(r.subscription!.scheduled).toBeUndefined();
    expect(day(r.subscription!.periodEnd)).toBe("2026-04-05T00:00:00.000Z"); // the cycle stays
    const b = await balance();
    expect(b.availableMicros).toBe(cr(120));
    expect(b.period).toMatchObject({ planId: "grow", allowanceMicros: cr(150), usedMicros: cr(30) });
    setClock("2026-04-05T00:00:00Z");
    expect(await available()).toBe(150);
    await expectConsistent(t.ledger, WS);
  });

  it("a downgrade is scheduled for the next period (Subscription.scheduled), nothing changes now", async () => {
    serve("funnel-builder");
    setClock("2026-03-05T00:00:00Z");
    await subscribe({ planId: "expand" });
    await spend(100);
    const r = await subscribe({ planId: "base" });
    expect(r.change).toBe(SubscriptionChange.SCHEDULED);
    expect(r.subscription!.planId).toBe("expand");
    expect(r.subscription!.scheduled).toMatchObject({ planId: "base", seats: 0, endsAtPeriodEnd: false });
    expect(day(r.subscription!.scheduled!.effectiveAt)).toBe("2026-04-05T00:00:00.000Z");
    expect(await available()).toBe(400);
    // Asking again changes nothing more.
    expect((await subscribe({ planId: "base" })).change).toBe(SubscriptionChange.UNCHANGED);

    setClock("2026-04-05T00:00:00Z");
    const s = await getSub();
    expect(s).toMatchObject({ planId: "base", allowancePerPeriodMicros: cr(40) });
    expect(s.scheduled).toBeUndefined();
    expect(await available()).toBe(40);
    await expectConsistent(t.ledger, WS);
  });

  it("re-stating the current plan cancels a scheduled downgrade", async () => {
    serve("funnel-builder");
    setClock("2026-03-05T00:00:00Z");
    await subscribe({ planId: "grow" });
    await subscribe({ planId: "base" });
    const undo = await subscribe({ planId: "grow" });
    expect(undo.change).toBe(SubscriptionChange.APPLIED);
    expect(undo.subscription!.scheduled).toBeUndefined();
    setClock("2026-04-05T00:00:00Z");
    expect((await getSub()).planId).toBe("grow");
    expect(await available()).toBe(150);
    await expectConsistent(t.ledger, WS);
  });

  it("added seats add their credits at once; removed seats count from the next period", async () => {
    serve("video-studio");
    setClock("2026-03-10T00:00:00Z");
    await subscribe({ planId: "team", seats: 2 });
    await spend(100);
    const more = await subscribe({ planId: "team", seats: 4 });
    expect(more.change).toBe(SubscriptionChange.APPLIED);
    expect(more.subscription).toMatchObject({ seats: 4, allowanceGrantedMicros: cr(600), allowanceRemainingMicros: cr(500) });
    const fewer = await subscribe({ planId: "team", seats: 1 });
    expect(fewer.change).toBe(SubscriptionChange.SCHEDULED);
    expect(fewer.subscription!.seats).toBe(4);
    expect(fewer.subscription!.scheduled).toMatchObject({ planId: "", seats: 1 });
    expect(await available()).toBe(500);
    setClock("2026-04-10T00:00:00Z");
    const s = await getSub();
    expect(s).toMatchObject({ seats: 1, allowancePerPeriodMicros: cr(150) });
    expect(await available()).toBe(150);
    await expectConsistent(t.ledger, WS);
  });

  it("a per-seat add-on follows added seats at once", async () => {
    serve("video-studio");
    setClock("2026-03-10T00:00:00Z");
    await subscribe({ planId: "personal", seats: 1, addons: [{ addonId: "unit", units: 1 }] });
    const r = await subscribe({ planId: "personal", seats: 3, addons: [{ addonId: "unit", units: 1 }] });
    expect(r.subscription).toMatchObject({ addonGrantedMicros: cr(180), allowanceGrantedMicros: cr(60) });
    await expectConsistent(t.ledger, WS);
  });

  it("monthly → annual restarts the billing cycle now: the month's credits end, the year's arrive", async () => {
    serve("video-studio");
    setClock("2026-03-10T00:00:00Z");
    await subscribe({ planId: "personal" });
    await spend(10);
    setClock("2026-03-25T00:00:00Z");
    const r = await subscribe({ planId: "personal-annual" });
    expect(r.change).toBe(SubscriptionChange.RESTARTED);
    expect(day(r.subscription!.periodStart)).toBe("2026-03-25T00:00:00.000Z");
    expect(day(r.subscription!.periodEnd)).toBe("2027-03-25T00:00:00.000Z");
    const b = await balance();
    expect(b.availableMicros).toBe(cr(720));
    expect(b.expiredMicros).toBe(cr(50));
    await expectConsistent(t.ledger, WS);
  });
});

describe("idempotence and aliases", () => {
  it("SetSubscription repeated is UNCHANGED and writes nothing", async () => {
    serve("video-studio");
    setClock("2026-03-10T00:00:00Z");
    const req: SetInit = { planId: "team", seats: 3, addons: [{ addonId: "unit", units: 2 }], memberCapMicros: cr(100), anchor: "2026-01-10T00:00:00Z" };
    expect((await subscribe(req)).change).toBe(SubscriptionChange.STARTED);
    await spend(20);
    const before = await snapshot(env.redis, t.prefix);
    for (const again of [req, { ...req, planId: "team" }, { planId: "team", addons: req.addons, memberCapMicros: cr(100) }]) {
      const r = await subscribe(again);
      expect(r.change).toBe(SubscriptionChange.UNCHANGED);
      expect(r.subscription).toMatchObject({ planId: "team", seats: 3 });
    }
    expect(await snapshot(env.redis, t.prefix)).toEqual(before);
    // CancelAddon / EndSubscription repeated: changed=false, nothing written either.
    await cancelAddon("unit");
    const afterCancel = await snapshot(env.redis, t.prefix);
    expect((await cancelAddon("unit")).changed).toBe(false);
    expect(await snapshot(env.redis, t.prefix)).toEqual(afterCancel);
    await expectConsistent(t.ledger, WS);
  });

  it.each([
    ["funnel-builder", "base-annual", "base-yearly"],
    ["funnel-builder", "scale-annual", "scale-yearly"],
    ["video-studio", "personal-yearly", "personal-annual"],
    ["video-studio", "team-yearly", "team-annual"],
  ] as const)("%s: alias %s resolves to %s", async (product, alias, canonical) => {
    serve(product);
    setClock("2026-03-10T00:00:00Z");
    const r = await subscribe({ planId: alias });
    expect(r.subscription!.planId).toBe(canonical);
    expect((await getSub()).planId).toBe(canonical);
    expect((await balance()).period!.planId).toBe(canonical);
    // The alias and the id are the same plan: either one again changes nothing.
    expect((await subscribe({ planId: canonical })).change).toBe(SubscriptionChange.UNCHANGED);
    expect((await subscribe({ planId: alias })).change).toBe(SubscriptionChange.UNCHANGED);
  });
});

describe("workspace member caps", () => {
  beforeEach(() => serve("funnel-builder"));

  it("a member over the cap is refused (MEMBER_CAP_EXCEEDED, cap_micros) though the pool has credits", async () => {
    setClock("2026-03-05T00:00:00Z");
    const s = await subscribe({ planId: "scale", seats: 5, memberCapMicros: cr(100) });
    expect(s.subscription!.memberCapMicros).toBe(cr(100));
    await spend(80, { memberId: "ann" });
    const held = await reserve(15, { memberId: "ann" });

    const before = await snapshot(env.redis, t.prefix);
    const r = await rejection(reserve(6, { memberId: "ann" }));
    expect(r.code).toBe(Code.ResourceExhausted);
    expect(r.info).toMatchObject({
      reason: "MEMBER_CAP_EXCEEDED",
      domain: "creditd",
      metadata: { member_id: "ann", cap_micros: String(100 * C), used_micros: String(80 * C), held_micros: String(15 * C), required_micros: String(6 * C) },
    });
    expect(r.message).toMatch(/cap 100, used 80, held 15, required 6/);
    expect(await snapshot(env.redis, t.prefix)).toEqual(before);
    // The pool is far from empty: another member goes on; a Reserve without a member is not capped.
    await spend(90, { memberId: "bob" });
    await spend(500);

    let b = await balance("ann");
    expect(b.member).toEqual(expect.objectContaining({ memberId: "ann", usedMicros: cr(80), heldMicros: cr(15), capMicros: cr(100) }));
    expect(b.period!.usedMicros).toBe(cr(670));
    expect((await balance("bob")).member).toMatchObject({ usedMicros: cr(90), heldMicros: 0n });
    expect((await balance("nobody")).member).toMatchObject({ memberId: "nobody", usedMicros: 0n, heldMicros: 0n, capMicros: cr(100) });

    // Settling below the hold and refunding give the member room back.
    await settle(held.reservationId, 5);
    await credit.refund(create(RefundRequestSchema, { reservationId: held.reservationId, reason: "failed" }), ctx);
    b = await balance("ann");
    expect(b.member).toMatchObject({ usedMicros: cr(80), heldMicros: 0n });
    await spend(20, { memberId: "ann" });
    expect((await rejection(reserve(0.000001, { memberId: "ann" }))).info).toMatchObject({ reason: "MEMBER_CAP_EXCEEDED" });

    // Raising the cap applies at once; the cap resets with the period.
    expect((await subscribe({ planId: "scale", seats: 5, memberCapMicros: cr(200) })).change).toBe(SubscriptionChange.UPDATED);
    await spend(50, { memberId: "ann" });
    setClock("2026-04-05T00:00:00Z");
    b = await balance("ann");
    expect(b.member).toMatchObject({ usedMicros: 0n, capMicros: cr(200) });
    await spend(200, { memberId: "ann" });
    await expectConsistent(t.ledger, WS);
  });
});
