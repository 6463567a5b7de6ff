// The real server process, called over gRPC with grpc-js clients built from the protobuf-es descriptors.
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { type Client, status as GrpcStatus } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../src/gen/creditd/v1/admin_service_pb.js";
import { CreditService } from "../../src/gen/creditd/v1/credit_service_pb.js";
import { BucketKind, ReservationState } from "../../src/gen/creditd/v1/types_pb.js";
import { type TestRedis, startTestRedis } from "../support/redis.js";
import { type ServerProcess, startServer } from "../support/server-process.js";
import { CREDIT, grpcClient, serviceError, statusDetails, uniquePrefix, unary } from "./clients.js";

describe("e2e: gRPC", () => {
  let redis: TestRedis;
  let server: ServerProcess;
  let credit: Client;
  let admin: Client;

  beforeAll(async () => {
    redis = await startTestRedis();
    server = await startServer({ env: { CREDITD_REDIS_URL: redis.url, CREDITD_KEY_PREFIX: uniquePrefix("grpc") } });
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

  it("Grant → Reserve → Settle → Refund → GetBalance → GetReservation, with exact amounts", async () => {
    const granted = await unary(admin, AdminService.method.grant, {
      accountId: "acme",
      grantId: "g1",
      amountMicros: 100n * CREDIT,
      kind: BucketKind.TOPUP,
    });
    expect(granted.replayed).toBe(false);
    expect(granted.availableMicros).toBe(100n * CREDIT);
    expect(granted.bucket).toMatchObject({
      bucketId: "b1",
      kind: BucketKind.TOPUP,
      remainingMicros: 100n * CREDIT,
      grantedMicros: 100n * CREDIT,
      grantId: "g1",
    });

    const before = Date.now();
    const reserved = await unary(credit, CreditService.method.reserve, {
      accountId: "acme",
      requestId: "r1",
      cost: { case: "amountMicros", value: 30n * CREDIT },
      ttlSeconds: 60,
    });
    expect(reserved).toMatchObject({
      reservationId: "acme:r1",
      heldMicros: 30n * CREDIT,
      availableMicros: 70n * CREDIT,
      replayed: false,
    });
    expect(reserved.heldFrom.map((d) => [d.bucketId, d.amountMicros])).toEqual([["b1", 30n * CREDIT]]);
    const deadline = timestampMs(reserved.expiresAt!);
    expect(deadline).toBeGreaterThanOrEqual(before + 59_000);
    expect(deadline).toBeLessThanOrEqual(Date.now() + 61_000);

    // The same request id again: the first answer, nothing held twice.
    const again = await unary(credit, CreditService.method.reserve, {
      accountId: "acme",
      requestId: "r1",
      cost: { case: "amountMicros", value: 30n * CREDIT },
      ttlSeconds: 60,
    });
    expect(again).toMatchObject({ reservationId: "acme:r1", heldMicros: 30n * CREDIT, availableMicros: 70n * CREDIT, replayed: true });

    const settled = await unary(credit, CreditService.method.settle, {
      reservationId: reserved.reservationId,
      cost: { case: "chargeMicros", value: 12_500_000n },
    });
    expect(settled).toMatchObject({
      chargedMicros: 12_500_000n,
      releasedMicros: 17_500_000n,
      availableMicros: 87_500_000n,
      holdExpired: false,
      uncoveredMicros: 0n,
      replayed: false,
    });

    const refunded = await unary(credit, CreditService.method.refund, {
      reservationId: reserved.reservationId,
      reason: "generation failed downstream",
    });
    expect(refunded).toMatchObject({
      refundedMicros: 12_500_000n,
      availableMicros: 100n * CREDIT,
      expiredMicros: 0n,
      state: ReservationState.REFUNDED,
      replayed: false,
    });

    const balance = await unary(credit, CreditService.method.getBalance, { accountId: "acme" });
    expect(balance).toMatchObject({
      accountId: "acme",
      availableMicros: 100n * CREDIT,
      heldMicros: 0n,
      grantedMicros: 100n * CREDIT,
      chargedMicros: 0n,
      expiredMicros: 0n,
    });
    expect(balance.buckets.map((b) => [b.bucketId, b.remainingMicros])).toEqual([["b1", 100n * CREDIT]]);

    const { reservation } = await unary(admin, AdminService.method.getReservation, {
      reservationId: reserved.reservationId,
    });
    expect(reservation).toMatchObject({
      reservationId: "acme:r1",
      accountId: "acme",
      requestId: "r1",
      state: ReservationState.REFUNDED,
      heldMicros: 30n * CREDIT,
      chargedMicros: 12_500_000n,
      releasedMicros: 17_500_000n,
      refundedMicros: 12_500_000n,
      uncoveredMicros: 0n,
      holdExpired: false,
      refundReason: "generation failed downstream",
    });
    expect(reservation?.heldFrom.map((d) => [d.bucketId, d.amountMicros])).toEqual([["b1", 30n * CREDIT]]);
    expect(reservation?.chargedFrom.map((d) => [d.bucketId, d.amountMicros])).toEqual([["b1", 12_500_000n]]);
    expect(reservation?.settledAt).toBeDefined();
    expect(reservation?.refundedAt).toBeDefined();
  });

  it("refuses a reservation above the balance with RESOURCE_EXHAUSTED and an ErrorInfo in grpc-status-details-bin", async () => {
    await unary(admin, AdminService.method.grant, {
      accountId: "poor",
      grantId: "g1",
      amountMicros: 70n * CREDIT,
      kind: BucketKind.ALLOWANCE,
    });
    const err = await serviceError(
      unary(credit, CreditService.method.reserve, {
        accountId: "poor",
        requestId: "big",
        cost: { case: "amountMicros", value: 80n * CREDIT },
      }),
    );
    expect(err.code).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
    expect(err.code).toBe(8);
    expect(err.details).toBe("insufficient credits: available 70, required 80");

    const { status, errorInfo } = statusDetails(err);
    expect(status.code).toBe(8);
    expect(status.message).toBe("insufficient credits: available 70, required 80");
    expect(errorInfo).toBeDefined();
    expect(errorInfo?.reason).toBe("INSUFFICIENT_CREDITS");
    expect(errorInfo?.domain).toBe("creditd");
    expect(errorInfo?.metadata).toEqual({ available_micros: "70000000", required_micros: "80000000" });

    // A refused request changes nothing.
    const balance = await unary(credit, CreditService.method.getBalance, { accountId: "poor" });
    expect(balance).toMatchObject({ availableMicros: 70n * CREDIT, heldMicros: 0n, grantedMicros: 70n * CREDIT });
  });

  it.each([
    ["account_id", { accountId: "", requestId: "r1", cost: { case: "amountMicros" as const, value: 1n } }],
    ["account_id", { accountId: "no spaces", requestId: "r1", cost: { case: "amountMicros" as const, value: 1n } }],
    ["request_id", { accountId: "acme", requestId: "", cost: { case: "amountMicros" as const, value: 1n } }],
    ["amount_micros", { accountId: "acme", requestId: "r9" }],
    ["amount_micros", { accountId: "acme", requestId: "r9", cost: { case: "amountMicros" as const, value: -5n } }],
    ["ttl_seconds", { accountId: "acme", requestId: "r9", cost: { case: "amountMicros" as const, value: 1n }, ttlSeconds: -1 }],
  ])("rejects a bad %s with INVALID_ARGUMENT naming the field", async (field, req) => {
    const err = await serviceError(unary(credit, CreditService.method.reserve, req));
    expect(err.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(err.details.startsWith(`${field}: `), err.details).toBe(true);
    const { errorInfo } = statusDetails(err);
    expect(errorInfo?.reason).toBe("INVALID_FIELD");
    expect(errorInfo?.metadata["field"]).toBe(field);
  });

  it("rejects a malformed reservation id on Settle with INVALID_ARGUMENT naming reservation_id", async () => {
    const err = await serviceError(
      unary(credit, CreditService.method.settle, { reservationId: "nocolon", cost: { case: "chargeMicros", value: 1n } }),
    );
    expect(err.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(err.details).toMatch(/^reservation_id: /);
  });
});
