// Bad input on every field of SetSubscription, GetSubscription, CancelAddon, EndSubscription and the member_id
// fields of Reserve and GetBalance: INVALID_ARGUMENT whose ErrorInfo names the field, and not one key changed.
// Accounts without a subscription: NOT_FOUND with reason SUBSCRIPTION_NOT_FOUND.

import { readFileSync } from "node:fs";
import { type MessageInitShape, create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
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
import { GetBalanceRequestSchema, ReserveRequestSchema } from "../../src/gen/creditd/v1/credit_service_pb.js";
import { SubscriptionStatus } from "../../src/gen/creditd/v1/subscription_pb.js";
import { BucketKind } from "../../src/gen/creditd/v1/types_pb.js";
import { adminService } from "../../src/service/admin-service.js";
import { creditService } from "../../src/service/credit-service.js";
import { C, DAY, T0, type TestLedger, expectConsistent, openLedger, snapshot } from "../support/ledger.js";
import { testPricer } from "../support/pricing.js";
import { uniquePrefix, useTestRedis } from "../support/redis.js";
import { rejection } from "../support/rejection.js";

const env = useTestRedis();
const ctx = { signal: new AbortController().signal };
const catalogText = (name: string) => readFileSync(new URL(`../../examples/catalogs/${name}.yaml`, import.meta.url), "utf8");

// video-studio: free (no add-ons), personal (per-seat unit, max_units 100), team (shared unit, max_units 10,000),
// no plan with a trial. crm-assistant: plans with a 14-day trial.
const pricers = new Map<string, ReturnType<typeof testPricer>>();
afterAll(async () => {
  for (const p of pricers.values()) await p.close();
});

let t: TestLedger;
let credit: ReturnType<typeof creditService>;
let admin: ReturnType<typeof adminService>;

function serve(product: string): void {
  let p = pricers.get(product);
  if (!p) {
    p = testPricer(env.redis, uniquePrefix(), { catalogSource: catalogText(product) });
    pricers.set(product, p);
  }
  const pricer = p.pricer;
  credit = creditService({ ledger: t.ledger, pricer, holdTtlDefaultSeconds: 600, holdTtlMaxSeconds: 3600 });
  admin = adminService({ ledger: t.ledger, catalog: () => pricer.catalog });
}

const setBase = { accountId: "acme", planId: "team", seats: 2, addons: [{ addonId: "unit", units: 1 }] };

beforeEach(async () => {
  t = await openLedger(env.redis);
  serve("video-studio");
  // "acme": a live subscription with an add-on, a member cap, a top-up and a member's hold in flight, so a call
  // that slipped past validation would change something. "bare": credits but no subscription.
  await admin.setSubscription(create(SetSubscriptionRequestSchema, { ...setBase, memberCapMicros: 50n * BigInt(C) }), ctx);
  await admin.grant(create(GrantRequestSchema, { accountId: "acme", grantId: "pack", amountMicros: 10n * BigInt(C), kind: BucketKind.TOPUP }), ctx);
  await credit.reserve(create(ReserveRequestSchema, { accountId: "acme", requestId: "r-0", cost: { case: "amountMicros", value: 5n * BigInt(C) }, memberId: "ann" }), ctx);
  await admin.grant(create(GrantRequestSchema, { accountId: "bare", grantId: "g-bare", amountMicros: 10n * BigInt(C), kind: BucketKind.TOPUP }), ctx);
});


const MAX = 2n ** 53n - 1n;
type SetInit = MessageInitShape<typeof SetSubscriptionRequestSchema>;
const setSub = (over: SetInit) => () => admin.setSubscription(create(SetSubscriptionRequestSchema, { ...setBase, ...over }), ctx);
const getSub = (accountId: string) => () => admin.getSubscription(create(GetSubscriptionRequestSchema, { accountId }), ctx);
const cancel = (over: MessageInitShape<typeof CancelAddonRequestSchema>) => () =>
  admin.cancelAddon(create(CancelAddonRequestSchema, { accountId: "acme", addonId: "unit", ...over }), ctx);
const end = (over: MessageInitShape<typeof EndSubscriptionRequestSchema>) => () =>
  admin.endSubscription(create(EndSubscriptionRequestSchema, { accountId: "acme", when: EndWhen.NOW, ...over }), ctx);
const reserve = (memberId: string) => () =>
  credit.reserve(create(ReserveRequestSchema, { accountId: "acme", requestId: "r-1", cost: { case: "amountMicros", value: 1n * BigInt(C) }, memberId }), ctx);
const balance = (memberId: string) => () => credit.getBalance(create(GetBalanceRequestSchema, { accountId: "acme", memberId }), ctx);

const badAccounts: Array<[string, string]> = [["", "missing"], ["ac me", "space"], ["a{b}", "braces"], ["a:b", "colon"], ["x".repeat(129), "too long"], ["café", "non-ASCII"]];
// member_id: the account_id charset; empty means "no member" and is fine.
const badMembers: Array<[string, string]> = [["ann smith", "space"], ["{ann}", "braces"], ["a{b", "open brace"], ["ann|x", "pipe"], ["a:b", "colon"], ["x".repeat(129), "too long"], ["anné", "non-ASCII"], ["ann\n", "newline"]];
const badAnchors: Array<[string, { seconds: bigint; nanos: number }]> = [
  ["before 1970", { seconds: -1n, nanos: 0 }],
  ["nanos too big", { seconds: 1n, nanos: 1_000_000_000 }],
  ["negative nanos", { seconds: 1n, nanos: -1 }],
  ["the epoch itself", { seconds: 0n, nanos: 0 }],
  ["after year 9999", { seconds: 253402300800n, nanos: 0 }],
];

type Case = { rpc: string; field: string; why: string; call: () => Promise<unknown> };
const cases: Case[] = [
  // SetSubscription
  ...badAccounts.map(([v, why]) => ({ rpc: "SetSubscription", field: "account_id", why, call: setSub({ accountId: v }) })),
  { rpc: "SetSubscription", field: "plan_id", why: "empty", call: setSub({ planId: "" }) },
  { rpc: "SetSubscription", field: "plan_id", why: "empty, seats unset", call: setSub({ planId: "", seats: undefined }) },
  { rpc: "SetSubscription", field: "plan_id", why: "unknown", call: setSub({ planId: "enterprise" }) },
  { rpc: "SetSubscription", field: "plan_id", why: "unknown, seats unset", call: setSub({ planId: "platinum", seats: undefined }) },
  { rpc: "SetSubscription", field: "plan_id", why: "ids are case-sensitive", call: setSub({ planId: "Team" }) },
  { rpc: "SetSubscription", field: "plan_id", why: "trailing space", call: setSub({ planId: "team " }) },
  ...[0, -1, 100_001, 2_147_483_647].map((v) => ({ rpc: "SetSubscription", field: "seats", why: String(v), call: setSub({ seats: v }) })),
  { rpc: "SetSubscription", field: "addons[0].addon_id", why: "unknown add-on", call: setSub({ addons: [{ addonId: "nope", units: 1 }] }) },
  { rpc: "SetSubscription", field: "addons[0].addon_id", why: "empty add-on id", call: setSub({ addons: [{ addonId: "", units: 1 }] }) },
  { rpc: "SetSubscription", field: "addons[0].addon_id", why: "a plan with no add-ons", call: setSub({ planId: "free", addons: [{ addonId: "unit", units: 1 }] }) },
  { rpc: "SetSubscription", field: "addons[1].addon_id", why: "duplicate add-on", call: setSub({ addons: [{ addonId: "unit", units: 1 }, { addonId: "unit", units: 2 }] }) },
  { rpc: "SetSubscription", field: "addons[0].units", why: "-1", call: setSub({ addons: [{ addonId: "unit", units: -1 }] }) },
  { rpc: "SetSubscription", field: "addons[0].units", why: "above max_units 10000 (team)", call: setSub({ addons: [{ addonId: "unit", units: 10_001 }] }) },
  { rpc: "SetSubscription", field: "addons[0].units", why: "above max_units 100 (personal)", call: setSub({ planId: "personal", seats: 1, addons: [{ addonId: "unit", units: 101 }] }) },
  { rpc: "SetSubscription", field: "status", why: "ENDED", call: setSub({ status: SubscriptionStatus.ENDED }) },
  { rpc: "SetSubscription", field: "status", why: "TRIALING on a plan without trial", call: setSub({ status: SubscriptionStatus.TRIALING }) },
  { rpc: "SetSubscription", field: "status", why: "unknown value", call: setSub({ status: 99 as SubscriptionStatus }) },
  ...badAnchors.map(([why, ts]) => ({ rpc: "SetSubscription", field: "billing_anchor", why, call: setSub({ billingAnchor: ts }) })),
  ...[-1n, -(50n * BigInt(C)), MAX + 1n].map((v) => ({ rpc: "SetSubscription", field: "member_cap_micros", why: String(v), call: setSub({ memberCapMicros: v }) })),
  // GetSubscription
  ...badAccounts.map(([v, why]) => ({ rpc: "GetSubscription", field: "account_id", why, call: getSub(v) })),
  // CancelAddon
  ...badAccounts.map(([v, why]) => ({ rpc: "CancelAddon", field: "account_id", why, call: cancel({ accountId: v }) })),
  { rpc: "CancelAddon", field: "addon_id", why: "empty", call: cancel({ addonId: "" }) },
  { rpc: "CancelAddon", field: "addon_id", why: "too long", call: cancel({ addonId: "u".repeat(129) }) },
  { rpc: "CancelAddon", field: "addon_id", why: "control character", call: cancel({ addonId: "unit\u0000" }) },
  // EndSubscription
  ...badAccounts.map(([v, why]) => ({ rpc: "EndSubscription", field: "account_id", why, call: end({ accountId: v }) })),
  { rpc: "EndSubscription", field: "when", why: "unknown value", call: end({ when: 7 as EndWhen }) },
  // The member_id of Reserve and GetBalance
  ...badMembers.map(([v, why]) => ({ rpc: "Reserve", field: "member_id", why, call: reserve(v) })),
  ...badMembers.map(([v, why]) => ({ rpc: "GetBalance", field: "member_id", why, call: balance(v) })),
];

describe("bad input: INVALID_ARGUMENT naming the field, and nothing changes", () => {
  it.each(cases)("$rpc $field ($why)", async ({ field, call }) => {
    const before = await snapshot(env.redis, t.prefix);
    const r = await rejection(call());
    expect(r.code).toBe(Code.InvalidArgument);
    expect(r.message.startsWith(`${field}: `)).toBe(true);
    expect(r.info).toMatchObject({ reason: "INVALID_FIELD", domain: "creditd", metadata: { field } });
    expect(await snapshot(env.redis, t.prefix)).toEqual(before);
  });

  it("messages say what is wrong", async () => {
    const msg = async (call: () => Promise<unknown>) => (await rejection(call())).message;
    expect(await msg(setSub({ planId: "enterprise" }))).toMatch(/^plan_id: unknown plan "enterprise" \(catalog \S+ has free, personal, team, personal-annual, team-annual\)$/);
    expect(await msg(setSub({ seats: 0 }))).toBe("seats: must be between 1 and 100000");
    expect(await msg(setSub({ addons: [{ addonId: "nope", units: 1 }] }))).toBe('addons[0].addon_id: plan team has no add-on "nope" (it has unit)');
    expect(await msg(setSub({ addons: [{ addonId: "unit", units: 1 }, { addonId: "unit", units: 2 }] }))).toBe("addons[1].addon_id: unit is listed twice");
    expect(await msg(setSub({ status: SubscriptionStatus.TRIALING }))).toBe("status: plan team has no trial");
    expect(await msg(setSub({ status: SubscriptionStatus.ENDED }))).toBe("status: ENDED is not set here: call EndSubscription");
  });

  it("an alias counts as the plan when checking its add-ons", async () => {
    const r = await rejection(setSub({ planId: "personal-yearly", seats: 1, addons: [{ addonId: "unit", units: 101 }] })());
    expect(r.info).toMatchObject({ metadata: { field: "addons[0].units" } });
  });

  it("a bad request after the period ended changes nothing either (not even the period's roll-forward)", async () => {
    t.clock.set(T0 + 40 * DAY);
    for (const call of [
      setSub({ planId: "platinum", seats: undefined }),
      setSub({ seats: undefined, addons: [{ addonId: "unit", units: -1 }] }),
      setSub({ seats: undefined, status: SubscriptionStatus.ENDED }),
    ]) {
      const before = await snapshot(env.redis, t.prefix);
      expect((await rejection(call())).code).toBe(Code.InvalidArgument);
      expect(await snapshot(env.redis, t.prefix)).toEqual(before);
    }
    // A valid call then rolls the period forward as usual.
    const r = await admin.setSubscription(create(SetSubscriptionRequestSchema, { ...setBase, seats: undefined, memberCapMicros: 50n * BigInt(C) }), ctx);
    expect(r.change).toBe(SubscriptionChange.UNCHANGED);
    expect(r.subscription!.seats).toBe(2);
    await expectConsistent(t.ledger, "acme");
  });

  it("TRIALING on a live subscription is refused by the ledger as INVALID_ARGUMENT naming status, nothing changed", async () => {
    serve("crm-assistant");
    await admin.setSubscription(create(SetSubscriptionRequestSchema, { accountId: "crm", planId: "starter" }), ctx);
    const before = await snapshot(env.redis, t.prefix);
    const r = await rejection(admin.setSubscription(create(SetSubscriptionRequestSchema, { accountId: "crm", planId: "starter", status: SubscriptionStatus.TRIALING }), ctx));
    expect(r.code).toBe(Code.InvalidArgument);
    expect(r.message).toMatch(/^status: a trial only starts a new subscription/);
    expect(r.info).toMatchObject({ reason: "INVALID_FIELD", metadata: { field: "status" } });
    expect(await snapshot(env.redis, t.prefix)).toEqual(before);
  });

  it("valid edge values pass: seats 1 and 100000, units 0 and max_units, member cap 0, an empty member_id", async () => {
    await admin.setSubscription(create(SetSubscriptionRequestSchema, { accountId: "edge", planId: "team", seats: 100_000, addons: [{ addonId: "unit", units: 10_000 }], memberCapMicros: 0n }), ctx);
    const s = await admin.setSubscription(create(SetSubscriptionRequestSchema, { accountId: "edge2", planId: "personal", seats: 1, addons: [{ addonId: "unit", units: 0 }], billingAnchor: timestampFromMs(T0 - DAY) }), ctx);
    expect(s.change).toBe(SubscriptionChange.STARTED);
    await reserve("")();
    expect((await balance("")()).member).toBeUndefined();
    await expectConsistent(t.ledger, "edge");
    await expectConsistent(t.ledger, "edge2");
  });
});

describe("no subscription: NOT_FOUND with reason SUBSCRIPTION_NOT_FOUND, nothing changed", () => {
  const notFound: Array<[string, () => Promise<unknown>]> = [
    ["GetSubscription on an account with credits only", getSub("bare")],
    ["GetSubscription on an account never seen", getSub("ghost")],
    ["CancelAddon on an account with credits only", cancel({ accountId: "bare" })],
    ["CancelAddon on an account never seen", cancel({ accountId: "ghost" })],
    ["CancelAddon of an add-on the subscription does not have", cancel({ addonId: "other" })],
    ["EndSubscription now", end({ accountId: "bare" })],
    ["EndSubscription at the period's end", end({ accountId: "bare", when: EndWhen.PERIOD_END })],
    ["EndSubscription on an account never seen", end({ accountId: "ghost" })],
  ];
  it.each(notFound)("%s", async (_name, call) => {
    const before = await snapshot(env.redis, t.prefix);
    const r = await rejection(call());
    expect(r.code).toBe(Code.NotFound);
    expect(r.info).toMatchObject({ reason: "SUBSCRIPTION_NOT_FOUND", domain: "creditd" });
    expect((r.info as { metadata: Record<string, string> }).metadata.account_id).toMatch(/^(bare|ghost|acme)$/);
    expect(await snapshot(env.redis, t.prefix)).toEqual(before);
  });

  it("CancelAddon after the subscription ended is NOT_FOUND too", async () => {
    await end({})();
    const r = await rejection(cancel({})());
    expect(r).toMatchObject({ code: Code.NotFound, info: { reason: "SUBSCRIPTION_NOT_FOUND" } });
    await expectConsistent(t.ledger, "acme");
  });
});
