// The real server process, called with plain fetch and JSON over the Connect protocol (what curl does).
import { fromBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { type TestRedis, startTestRedis } from "../support/redis.js";
import { type ServerProcess, startServer } from "../support/server-process.js";
import { okJson, postJson, uniquePrefix } from "./clients.js";

const CREDIT = "creditd.v1.CreditService";
const ADMIN = "creditd.v1.AdminService";

/** Connect's base64 for binary details: standard alphabet, maybe without padding. */
function decodeBase64(text: string): Uint8Array {
  return Buffer.from(text, "base64");
}

describe("e2e: HTTP JSON (Connect)", () => {
  let redis: TestRedis;
  let server: ServerProcess;

  beforeAll(async () => {
    redis = await startTestRedis();
    server = await startServer({ env: { CREDITD_REDIS_URL: redis.url, CREDITD_KEY_PREFIX: uniquePrefix("http") } });
  }, 180_000);

  afterAll(async () => {
    const exit = await server?.stop();
    await redis?.stop();
    expect(exit?.code, exit && `${exit.stdout}${exit.stderr}`).toBe(0);
  });

  it("Grant → Reserve → Settle → Refund → GetBalance → GetReservation, with exact amounts", async () => {
    const url = server.httpUrl;
    const granted = await okJson(url, `${ADMIN}/Grant`, {
      accountId: "acme",
      grantId: "g1",
      amountMicros: "100000000",
      kind: "BUCKET_KIND_TOPUP",
    });
    expect(granted).toMatchObject({
      bucket: { bucketId: "b1", kind: "BUCKET_KIND_TOPUP", remainingMicros: "100000000", grantedMicros: "100000000" },
      availableMicros: "100000000",
      replayed: false,
    });

    const reserve = await postJson(url, `${CREDIT}/Reserve`, { accountId: "acme", requestId: "r1", amountMicros: "5000000" });
    expect(reserve.status).toBe(200);
    expect(reserve.contentType).toMatch(/^application\/json/);
    expect(reserve.body).toMatchObject({
      reservationId: "acme:r1",
      heldMicros: "5000000",
      availableMicros: "95000000",
      replayed: false,
      heldFrom: [{ bucketId: "b1", amountMicros: "5000000" }],
    });
    expect(Date.parse(String(reserve.body["expiresAt"]))).toBeGreaterThan(Date.now());

    // A number is accepted for an int64 too (proto3 JSON), and the repeat replays the first answer.
    const replay = await okJson(url, `${CREDIT}/Reserve`, { accountId: "acme", requestId: "r1", amountMicros: 5000000 });
    expect(replay).toMatchObject({ reservationId: "acme:r1", heldMicros: "5000000", availableMicros: "95000000", replayed: true });

    const settled = await okJson(url, `${CREDIT}/Settle`, { reservationId: "acme:r1", chargeMicros: "3250000" });
    expect(settled).toMatchObject({
      chargedMicros: "3250000",
      releasedMicros: "1750000",
      availableMicros: "96750000",
      holdExpired: false,
      uncoveredMicros: "0",
      replayed: false,
    });

    const refunded = await okJson(url, `${CREDIT}/Refund`, { reservationId: "acme:r1", reason: "bad output" });
    expect(refunded).toMatchObject({
      refundedMicros: "3250000",
      availableMicros: "100000000",
      expiredMicros: "0",
      state: "RESERVATION_STATE_REFUNDED",
      replayed: false,
    });

    const balance = await okJson(url, `${CREDIT}/GetBalance`, { accountId: "acme" });
    expect(balance).toMatchObject({
      accountId: "acme",
      availableMicros: "100000000",
      heldMicros: "0",
      grantedMicros: "100000000",
      chargedMicros: "0",
      expiredMicros: "0",
    });
    expect(balance["buckets"]).toEqual([expect.objectContaining({ bucketId: "b1", remainingMicros: "100000000" })]);

    const { reservation } = (await okJson(url, `${ADMIN}/GetReservation`, { reservationId: "acme:r1" })) as {
      reservation: Record<string, unknown>;
    };
    expect(reservation).toMatchObject({
      reservationId: "acme:r1",
      accountId: "acme",
      requestId: "r1",
      state: "RESERVATION_STATE_REFUNDED",
      heldMicros: "5000000",
      chargedMicros: "3250000",
      releasedMicros: "1750000",
      refundedMicros: "3250000",
      refundReason: "bad output",
      heldFrom: [{ bucketId: "b1", amountMicros: "5000000" }],
      chargedFrom: [{ bucketId: "b1", amountMicros: "3250000" }],
    });
  });

  it("answers insufficient credits with a Connect error: resource_exhausted, HTTP 429, ErrorInfo details", async () => {
    const url = server.httpUrl;
    await okJson(url, `${ADMIN}/Grant`, { accountId: "poor", grantId: "g1", amountMicros: "70000000", kind: "BUCKET_KIND_ALLOWANCE" });
    const reply = await postJson(url, `${CREDIT}/Reserve`, { accountId: "poor", requestId: "big", amountMicros: "80000000" });
    expect(reply.status).toBe(429);
    expect(reply.contentType).toMatch(/^application\/json/);
    expect(reply.body).toEqual({
      code: "resource_exhausted",
      message: "insufficient credits: available 70, required 80",
      details: [
        {
          type: "google.rpc.ErrorInfo",
          value: expect.any(String),
          debug: {
            reason: "INSUFFICIENT_CREDITS",
            domain: "creditd",
            metadata: { available_micros: "70000000", required_micros: "80000000" },
          },
        },
      ],
    });
    // The binary value is the same ErrorInfo as debug shows.
    const detail = (reply.body["details"] as Array<{ value: string }>)[0]!;
    const info = fromBinary(ErrorInfoSchema, decodeBase64(detail.value));
    expect(info.reason).toBe("INSUFFICIENT_CREDITS");
    expect(info.metadata).toEqual({ available_micros: "70000000", required_micros: "80000000" });

    const balance = await okJson(url, `${CREDIT}/GetBalance`, { accountId: "poor" });
    expect(balance).toMatchObject({ availableMicros: "70000000", heldMicros: "0" });
  });

  it("answers bad input with invalid_argument (HTTP 400) naming the field", async () => {
    const reply = await postJson(server.httpUrl, `${CREDIT}/Reserve`, { accountId: "acme", requestId: "r2", amountMicros: "0" });
    expect(reply.status).toBe(400);
    expect(reply.body["code"]).toBe("invalid_argument");
    expect(String(reply.body["message"])).toMatch(/^amount_micros: /);
    const details = reply.body["details"] as Array<{ type: string; debug: { reason: string; metadata: Record<string, string> } }>;
    expect(details[0]).toMatchObject({ type: "google.rpc.ErrorInfo", debug: { reason: "INVALID_FIELD", metadata: { field: "amount_micros" } } });
  });

  it("answers JSON that does not fit the message with invalid_argument", async () => {
    const reply = await postJson(server.httpUrl, `${CREDIT}/Reserve`, { accountId: "acme", requestId: "r3", amountMicros: "lots" });
    expect(reply.status).toBe(400);
    expect(reply.body["code"]).toBe("invalid_argument");
  });

  it("answers an unknown path with HTTP 404", async () => {
    // connect-node's fallback for a path no route serves: a bare 404 (no Connect error body).
    const res = await fetch(`${server.httpUrl}/${CREDIT}/Nope`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{}",
      signal: AbortSignal.timeout(5000),
    });
    expect(res.status).toBe(404);
    await res.arrayBuffer();
  });
});
