import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import {
  GetReservationRequestSchema,
  GrantRequestSchema,
} from "../../src/gen/creditd/v1/admin_service_pb.js";
import {
  GetBalanceRequestSchema,
  RefundRequestSchema,
  ReserveRequestSchema,
  SettleRequestSchema,
} from "../../src/gen/creditd/v1/credit_service_pb.js";
import { BucketKind } from "../../src/gen/creditd/v1/types_pb.js";
import { adminService } from "../../src/service/admin-service.js";
import { creditService } from "../../src/service/credit-service.js";
import { formatCredits } from "../../src/service/errors.js";
import { C, T0, type TestLedger, openLedger, snapshot } from "../support/ledger.js";
import { testPricer } from "../support/pricing.js";
import { useTestRedis } from "../support/redis.js";
import { rejection } from "../support/rejection.js";

const env = useTestRedis();
let t: TestLedger;
let credit: ReturnType<typeof creditService>;
let admin: ReturnType<typeof adminService>;
const ctx = { signal: new AbortController().signal };
let pricing: ReturnType<typeof testPricer> | undefined;
afterAll(() => pricing?.close());

beforeEach(async () => {
  t = await openLedger(env.redis);
  pricing ??= testPricer(env.redis, t.prefix);
  credit = creditService({ ledger: t.ledger, pricer: pricing.pricer, holdTtlDefaultSeconds: 600, holdTtlMaxSeconds: 3600 });
  admin = adminService({ ledger: t.ledger, catalog: () => pricing!.pricer.catalog });
  // An account with credits and a live hold, so a call that slipped past validation would change something.
  await admin.grant(create(GrantRequestSchema, { accountId: "acme", grantId: "g-0", amountMicros: 100n * BigInt(C), kind: BucketKind.ALLOWANCE }), ctx);
  await credit.reserve(create(ReserveRequestSchema, { accountId: "acme", requestId: "r-0", cost: { case: "amountMicros", value: 5n * BigInt(C) } }), ctx);
});


const MAX = 2n ** 53n - 1n;
const reserveBase = { accountId: "acme", requestId: "r-1", cost: { case: "amountMicros" as const, value: 5_000_000n }, ttlSeconds: 60 };
const settleBase = { reservationId: "acme:r-0", cost: { case: "chargeMicros" as const, value: 1_000_000n } };
const grantBase = { accountId: "acme", grantId: "g-1", amountMicros: 1_000_000n, kind: BucketKind.TOPUP, priority: 0 };

type Case = { rpc: string; field: string; why: string; call: () => Promise<unknown> };
const reserve = (over: object) => () => credit.reserve(create(ReserveRequestSchema, { ...reserveBase, ...over }), ctx);
const settle = (over: object) => () => credit.settle(create(SettleRequestSchema, { ...settleBase, ...over }), ctx);
const refund = (over: object) => () => credit.refund(create(RefundRequestSchema, { reservationId: "acme:r-0", ...over }), ctx);
const balance = (accountId: string) => () => credit.getBalance(create(GetBalanceRequestSchema, { accountId }), ctx);
const grant = (over: object) => () => admin.grant(create(GrantRequestSchema, { ...grantBase, ...over }), ctx);
const getReservation = (reservationId: string) => () => admin.getReservation(create(GetReservationRequestSchema, { reservationId }), ctx);

const badAccounts: Array<[string, string]> = [["", "missing"], ["ac me", "space"], ["a{b}", "braces"], ["a:b", "colon"], ["x".repeat(129), "too long"], ["café", "non-ASCII"]];
const badKeys: Array<[string, string]> = [["", "missing"], ["has space", "space"], ["brace{", "brace"], ["pi|pe", "pipe"], ["x".repeat(129), "too long"], ["tab\t", "control"]];
const badReservations: Array<[string, string]> = [["", "missing"], ["nocolon", "no colon"], [":r-0", "no account"], ["acme:", "no request"], ["ac me:r-0", "bad account"], ["acme:r 0", "bad request id"]];

const cases: Case[] = [
  ...badAccounts.map(([v, why]) => ({ rpc: "Reserve", field: "account_id", why, call: reserve({ accountId: v }) })),
  ...badKeys.map(([v, why]) => ({ rpc: "Reserve", field: "request_id", why, call: reserve({ requestId: v }) })),
  { rpc: "Reserve", field: "amount_micros", why: "unset", call: reserve({ cost: { case: undefined } }) },
  ...[0n, -1n, MAX + 1n, 2n ** 63n - 1n].map((v) => ({ rpc: "Reserve", field: "amount_micros", why: String(v), call: reserve({ cost: { case: "amountMicros", value: v } }) })),
  ...[-1, 3601].map((v) => ({ rpc: "Reserve", field: "ttl_seconds", why: String(v), call: reserve({ ttlSeconds: v }) })),
  ...badReservations.map(([v, why]) => ({ rpc: "Settle", field: "reservation_id", why, call: settle({ reservationId: v }) })),
  { rpc: "Settle", field: "charge_micros", why: "unset", call: settle({ cost: { case: undefined } }) },
  ...[-1n, MAX + 1n].map((v) => ({ rpc: "Settle", field: "charge_micros", why: String(v), call: settle({ cost: { case: "chargeMicros", value: v } }) })),
  ...badReservations.map(([v, why]) => ({ rpc: "Refund", field: "reservation_id", why, call: refund({ reservationId: v }) })),
  { rpc: "Refund", field: "reason", why: "too long", call: refund({ reason: "x".repeat(257) }) },
  { rpc: "Refund", field: "reason", why: "newline", call: refund({ reason: "line\nbreak" }) },
  ...badAccounts.map(([v, why]) => ({ rpc: "GetBalance", field: "account_id", why, call: balance(v) })),
  ...badAccounts.map(([v, why]) => ({ rpc: "Grant", field: "account_id", why, call: grant({ accountId: v }) })),
  ...badKeys.map(([v, why]) => ({ rpc: "Grant", field: "grant_id", why, call: grant({ grantId: v }) })),
  ...[0n, -5n, MAX + 1n].map((v) => ({ rpc: "Grant", field: "amount_micros", why: String(v), call: grant({ amountMicros: v }) })),
  ...[BucketKind.UNSPECIFIED, 99].map((v) => ({ rpc: "Grant", field: "kind", why: String(v), call: grant({ kind: v }) })),
  ...[-1, 1001].map((v) => ({ rpc: "Grant", field: "priority", why: String(v), call: grant({ priority: v }) })),
  ...[
    ["before 1970", { seconds: -1n, nanos: 0 }],
    ["nanos too big", { seconds: 1n, nanos: 1_000_000_000 }],
    ["negative nanos", { seconds: 1n, nanos: -1 }],
    ["the epoch itself", { seconds: 0n, nanos: 0 }],
    ["in the past", { seconds: BigInt(T0 / 1000 - 60), nanos: 0 }],
  ].map(([why, ts]) => ({ rpc: "Grant", field: "expires_at", why: why as string, call: grant({ expiresAt: ts }) })),
  ...badReservations.map(([v, why]) => ({ rpc: "GetReservation", field: "reservation_id", why, call: getReservation(v) })),
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
});

describe("refusals and their codes", () => {
  it("not enough credits: RESOURCE_EXHAUSTED in credits a person reads, with ErrorInfo, nothing held", async () => {
    await admin.grant(create(GrantRequestSchema, { accountId: "small", grantId: "g-s", amountMicros: 70n * BigInt(C), kind: BucketKind.TOPUP }), ctx);
    const before = await snapshot(env.redis, t.prefix);
    const r = await rejection(credit.reserve(create(ReserveRequestSchema, { accountId: "small", requestId: "big", cost: { case: "amountMicros", value: 80n * BigInt(C) } }), ctx));
    expect(r).toEqual({
      code: Code.ResourceExhausted,
      message: "insufficient credits: available 70, required 80",
      info: expect.objectContaining({ reason: "INSUFFICIENT_CREDITS", domain: "creditd", metadata: { available_micros: "70000000", required_micros: "80000000" } }),
    });
    expect(await snapshot(env.redis, t.prefix)).toEqual(before);
  });

  it("unknown reservations are NOT_FOUND naming reservation_id", async () => {
    for (const call of [settle({ reservationId: "acme:nope" }), refund({ reservationId: "acme:nope" }), getReservation("acme:nope")]) {
      const r = await rejection(call());
      expect(r.code).toBe(Code.NotFound);
      expect(r.message).toBe("reservation_id: no reservation acme:nope");
      expect(r.info).toMatchObject({ reason: "RESERVATION_NOT_FOUND" });
    }
  });

  it.each([
    ["a request id reused with another amount", reserve({ requestId: "r-0", cost: { case: "amountMicros", value: 6n * BigInt(C) } }), Code.AlreadyExists, "REQUEST_ID_CONFLICT"],
    ["a request id reused on another account", reserve({ accountId: "globex", requestId: "r-0", cost: { case: "amountMicros", value: 5n * BigInt(C) } }), Code.AlreadyExists, "REQUEST_ID_CONFLICT"],
    ["a grant id reused for another grant", grant({ grantId: "g-0" }), Code.AlreadyExists, "GRANT_ID_CONFLICT"],
  ] as const)("%s: %s", async (_name, call, code, reason) => {
    const before = await snapshot(env.redis, t.prefix);
    const r = await rejection(call());
    expect(r.code).toBe(code);
    expect(r.info).toMatchObject({ reason });
    expect(await snapshot(env.redis, t.prefix)).toEqual(before);
  });

  it("a second Settle with another charge is ALREADY_EXISTS; a Settle after a Refund is FAILED_PRECONDITION", async () => {
    await settle({})();
    expect(await rejection(settle({ cost: { case: "chargeMicros", value: 2n } })())).toMatchObject({ code: Code.AlreadyExists, info: { reason: "ALREADY_SETTLED" } });
    await credit.reserve(create(ReserveRequestSchema, { ...reserveBase, requestId: "r-2" }), ctx);
    await refund({ reservationId: "acme:r-2" })();
    expect(await rejection(settle({ reservationId: "acme:r-2" })())).toMatchObject({ code: Code.FailedPrecondition, info: { reason: "ALREADY_REFUNDED" } });
  });

  it("ttl_seconds 0 takes the configured default", async () => {
    const r = await credit.reserve(create(ReserveRequestSchema, { ...reserveBase, ttlSeconds: 0 }), ctx);
    expect(Number(r.expiresAt?.seconds) * 1000).toBe(T0 + 600_000);
  });
});

describe("formatCredits", () => {
  it.each([
    [0, "0"], [70_000_000, "70"], [70_500_000, "70.5"], [1, "0.000001"], [1_234_567, "1.234567"],
    [Number.MAX_SAFE_INTEGER, "9007199254.740991"], [-2_500_000, "-2.5"],
  ])("%d micros → %s credits", (micros, text) => {
    expect(formatCredits(micros)).toBe(text);
  });
});

