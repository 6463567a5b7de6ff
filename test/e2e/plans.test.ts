// Plans through the real server process: a product's catalog file with its plans, subscriptions set over gRPC
// and over JSON, Reserve with a member, GetBalance showing the period. The clock is Redis's own (TIME).
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { type Client, status as GrpcStatus } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService, SubscriptionChange } from "../../src/gen/creditd/v1/admin_service_pb.js";
import { CreditService } from "../../src/gen/creditd/v1/credit_service_pb.js";
import { SubscriptionStatus } from "../../src/gen/creditd/v1/subscription_pb.js";
import { BucketKind } from "../../src/gen/creditd/v1/types_pb.js";
import { type TestRedis, startTestRedis } from "../support/redis.js";
import { ROOT, type ServerProcess, startServer } from "../support/server-process.js";
import { CREDIT, grpcClient, okJson, postJson, serviceError, statusDetails, uniquePrefix, unary } from "./clients.js";

const ADMIN = "creditd.v1.AdminService";
const CREDIT_SVC = "creditd.v1.CreditService";

/** The start of the month period holding now for an anchor on `day` at 00:00 UTC (no day past 28 here). */
function periodStart(now: Date, day: number): Date {
  const thisMonth = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), day));
  return thisMonth.getTime() <= now.getTime()
    ? thisMonth
    : new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, day));
}

describe("e2e: plans and subscriptions", () => {
  let redis: TestRedis;
  let server: ServerProcess;
  let credit: Client;
  let admin: Client;

  beforeAll(async () => {
    redis = await startTestRedis();
    server = await startServer({
      env: {
        CREDITD_REDIS_URL: redis.url,
        CREDITD_KEY_PREFIX: uniquePrefix("plans"),
        CREDITD_CATALOG: `${ROOT}examples/catalogs/video-studio.yaml`,
      },
    });
    credit = grpcClient(CreditService, server.grpcAddr);
    admin = grpcClient(AdminService, server.grpcAddr);
  }, 180_000);

  afterAll(async () => {
    credit?.close();
    admin?.close();
    const exit = await server?.stop();
    await redis?.stop();
    expect(exit?.code, exit && `${exit.stdout}${exit.stderr}`).toBe(0);
  });

  it("gRPC: a Team workspace billed on the 5th, seats pooled, a shared add-on, an upgrade in seats", async () => {
    const anchor = new Date(Date.UTC(2026, 0, 5));
    const set = await unary(admin, AdminService.method.setSubscription, {
      accountId: "studio",
      planId: "team",
      seats: 3,
      billingAnchor: { seconds: BigInt(anchor.getTime() / 1000), nanos: 0 },
      addons: [{ addonId: "unit", units: 1 }],
    });
    expect(set.change).toBe(SubscriptionChange.STARTED);
    const s = set.subscription!;
    expect(s).toMatchObject({ planId: "team", status: SubscriptionStatus.ACTIVE, seats: 3, unlimited: false });
    expect(s.allowancePerPeriodMicros).toBe(450n * CREDIT);
    expect(s.addonGrantedMicros).toBe(200n * CREDIT);
    const start = periodStart(new Date(), 5);
    expect(timestampMs(s.periodStart!)).toBe(start.getTime());
    expect(new Date(timestampMs(s.periodEnd!)).getUTCDate()).toBe(5);

    const again = await unary(admin, AdminService.method.setSubscription, {
      accountId: "studio",
      planId: "team",
      seats: 3,
      addons: [{ addonId: "unit", units: 1 }],
    });
    expect(again.change).toBe(SubscriptionChange.UNCHANGED);

    const more = await unary(admin, AdminService.method.setSubscription, {
      accountId: "studio",
      planId: "team",
      seats: 4,
      addons: [{ addonId: "unit", units: 1 }],
    });
    expect(more.change).toBe(SubscriptionChange.APPLIED);
    expect(more.subscription!.allowanceGrantedMicros).toBe(600n * CREDIT);

    const balance = await unary(credit, CreditService.method.getBalance, { accountId: "studio" });
    expect(balance.availableMicros).toBe(800n * CREDIT);
    expect(balance.period).toMatchObject({ planId: "team", allowanceMicros: 600n * CREDIT, addonMicros: 200n * CREDIT });
    expect(timestampMs(balance.period!.periodEnd!)).toBe(timestampMs(s.periodEnd!));

    const unknown = await serviceError(
      unary(admin, AdminService.method.setSubscription, { accountId: "studio", planId: "platinum" }),
    );
    expect(unknown.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(statusDetails(unknown).errorInfo?.metadata).toMatchObject({ field: "plan_id" });
  });

  it("JSON: a member cap refuses one member while the pool has credits; GetBalance shows the member", async () => {
    const url = server.httpUrl;
    const set = await okJson(url, `${ADMIN}/SetSubscription`, {
      accountId: "crew",
      planId: "team",
      seats: 2,
      memberCapMicros: "50000000",
    });
    expect(set).toMatchObject({
      change: "SUBSCRIPTION_CHANGE_STARTED",
      subscription: { planId: "team", seats: 2, memberCapMicros: "50000000", status: "SUBSCRIPTION_STATUS_ACTIVE" },
    });

    const ok = await okJson(url, `${CREDIT_SVC}/Reserve`, {
      accountId: "crew",
      requestId: "crew-1",
      amountMicros: "40000000",
      memberId: "ann",
    });
    expect(ok).toMatchObject({ heldMicros: "40000000" });
    const over = await postJson(url, `${CREDIT_SVC}/Reserve`, {
      accountId: "crew",
      requestId: "crew-2",
      amountMicros: "20000000",
      memberId: "ann",
    });
    expect(over.status).toBe(429);
    expect(over.body).toMatchObject({ code: "resource_exhausted" });
    expect(String(over.body["message"])).toMatch(/cap 50/);
    await okJson(url, `${CREDIT_SVC}/Reserve`, { accountId: "crew", requestId: "crew-3", amountMicros: "20000000", memberId: "bob" });
    await okJson(url, `${CREDIT_SVC}/Settle`, { reservationId: "crew:crew-1", chargeMicros: "35000000" });

    const balance = await okJson(url, `${CREDIT_SVC}/GetBalance`, { accountId: "crew", memberId: "ann" });
    expect(balance).toMatchObject({
      availableMicros: String(300_000_000 - 35_000_000 - 20_000_000),
      period: { planId: "team", usedMicros: "35000000", allowanceMicros: "300000000" },
      member: { memberId: "ann", usedMicros: "35000000", capMicros: "50000000" },
    });

    const cancel = await okJson(url, `${ADMIN}/EndSubscription`, { accountId: "crew", when: "END_WHEN_PERIOD_END" });
    expect(cancel).toMatchObject({ changed: true, subscription: { scheduled: { endsAtPeriodEnd: true } } });
    const got = await okJson(url, `${ADMIN}/GetSubscription`, { accountId: "crew" });
    expect(got).toMatchObject({ subscription: { status: "SUBSCRIPTION_STATUS_ACTIVE" } });
    const none = await postJson(url, `${ADMIN}/GetSubscription`, { accountId: "nobody" });
    expect(none.status).toBe(404);
  });

  it("top-ups granted beside a plan are drawn after its allowance", async () => {
    await unary(admin, AdminService.method.setSubscription, { accountId: "solo", planId: "personal" });
    await unary(admin, AdminService.method.grant, {
      accountId: "solo",
      grantId: "pack-1",
      amountMicros: 10n * CREDIT,
      kind: BucketKind.TOPUP,
    });
    const r = await unary(credit, CreditService.method.reserve, {
      accountId: "solo",
      requestId: "solo-1",
      cost: { case: "amountMicros", value: 65n * CREDIT },
    });
    expect(r.heldFrom.map((d) => d.amountMicros)).toEqual([60n * CREDIT, 5n * CREDIT]);
  });
});
