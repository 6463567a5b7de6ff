import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { GetReservationRequestSchema, GrantRequestSchema } from "../../src/gen/creditd/v1/admin_service_pb.js";
import {
  GetBalanceRequestSchema,
  RefundRequestSchema,
  ReserveRequestSchema,
} from "../../src/gen/creditd/v1/credit_service_pb.js";
import { instrument, outcomeOf } from "../../src/rpc/instrument.js";
import type { CallContext } from "../../src/rpc/types.js";
import { INSUFFICIENT_MESSAGE, SECRET, adminBinding, captureLogs, creditBinding, rejection } from "./fixtures.js";

const ctx: CallContext = { signal: new AbortController().signal };
const MARKER = "MARKER-customer-text-9f3c";

describe("instrument", () => {
  it("logs one line with rpc, outcome, latency and only the identifier fields", async () => {
    const logs = captureLogs();
    const b = instrument(creditBinding(), logs.logger);
    const res = await b.handlers.refund(create(RefundRequestSchema, { reservationId: "rsv_1", reason: MARKER }), ctx);
    expect(res.refundedMicros).toBe(5n);

    expect(logs.lines).toHaveLength(1);
    const line = logs.lines[0] ?? {};
    expect(line).toMatchObject({
      level: 30,
      rpc: "creditd.v1.CreditService/Refund",
      outcome: "ok",
      reservation_id: "rsv_1",
    });
    expect(typeof line["latency_ms"]).toBe("number");
    const latency = line["latency_ms"] as number;
    expect(latency).toBeGreaterThanOrEqual(0);
    expect(Math.round(latency * 1000) / 1000).toBe(latency); // at most 3 decimals
    // The reason is customer-provided text: never logged, under any key.
    expect(logs.raw.join("")).not.toContain(MARKER);
    expect(Object.keys(line).sort()).toEqual(
      ["hostname", "latency_ms", "level", "msg", "outcome", "pid", "reservation_id", "rpc", "time"].sort(),
    );
  });

  it("logs account_id, request_id and grant_id, and leaves empty ones out", async () => {
    const logs = captureLogs();
    const credit = instrument(creditBinding(), logs.logger);
    const admin = instrument(adminBinding(), logs.logger);
    await credit.handlers.reserve(
      create(ReserveRequestSchema, { accountId: "acme", requestId: "r1", cost: { case: "amountMicros", value: 1n } }),
      ctx,
    );
    await admin.handlers.grant(create(GrantRequestSchema, { accountId: "acme", grantId: "g1", amountMicros: 1n }), ctx);
    await credit.handlers.getBalance(create(GetBalanceRequestSchema, { accountId: "" }), ctx);

    expect(logs.lines[0]).toMatchObject({ rpc: "creditd.v1.CreditService/Reserve", account_id: "acme", request_id: "r1" });
    expect(logs.lines[1]).toMatchObject({ rpc: "creditd.v1.AdminService/Grant", account_id: "acme", grant_id: "g1" });
    expect(logs.lines[1]).not.toHaveProperty("request_id");
    expect(logs.lines[2]).toMatchObject({ rpc: "creditd.v1.CreditService/GetBalance", outcome: "ok" });
    expect(logs.lines[2]).not.toHaveProperty("account_id");
  });

  it("passes a ConnectError through and logs its code at info", async () => {
    const logs = captureLogs();
    const b = instrument(creditBinding(), logs.logger);
    const err = await rejection(
      b.handlers.reserve(
        create(ReserveRequestSchema, { accountId: "acme", requestId: "r2", cost: { case: "amountMicros", value: 80_000_000n } }),
        ctx,
      ),
    );
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.ResourceExhausted);
    expect((err as ConnectError).rawMessage).toBe(INSUFFICIENT_MESSAGE);
    expect((err as ConnectError).details).toHaveLength(1);
    expect(logs.lines).toHaveLength(1);
    expect(logs.lines[0]).toMatchObject({ level: 30, outcome: "resource_exhausted", account_id: "acme" });
    expect(logs.lines[0]).not.toHaveProperty("err");
  });

  it("turns any other throw into INTERNAL 'internal error' and logs the cause at error", async () => {
    const logs = captureLogs();
    const b = instrument(creditBinding(), logs.logger);
    const err = await rejection(b.handlers.reserve(create(ReserveRequestSchema, { requestId: "boom" }), ctx));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Internal);
    expect((err as ConnectError).rawMessage).toBe("internal error");
    expect(logs.lines).toHaveLength(1);
    const line = logs.lines[0] ?? {};
    expect(line).toMatchObject({ level: 50, outcome: "internal", request_id: "boom" });
    expect(line["err"]).toMatchObject({ type: "Error", message: SECRET });
    expect((line["err"] as { stack?: string }).stack).toContain(SECRET);
  });

  it("logs a deliberate INTERNAL ConnectError at error with its cause", async () => {
    const logs = captureLogs();
    const raw = adminBinding();
    raw.handlers.getReservation = async () => {
      throw new ConnectError("ledger unavailable", Code.Internal, undefined, undefined, new Error("redis: ECONNREFUSED"));
    };
    const b = instrument(raw, logs.logger);
    const err = await rejection(b.handlers.getReservation(create(GetReservationRequestSchema, { reservationId: "x" }), ctx));
    expect((err as ConnectError).rawMessage).toBe("ledger unavailable"); // deliberate: passed through as is
    expect(logs.lines).toHaveLength(1);
    expect(logs.lines[0]).toMatchObject({ level: 50, outcome: "internal", reservation_id: "x" });
    expect(logs.lines[0]?.["err"]).toMatchObject({ message: "redis: ECONNREFUSED" });
  });

  it("names outcomes like the Connect protocol", () => {
    expect(outcomeOf(Code.ResourceExhausted)).toBe("resource_exhausted");
    expect(outcomeOf(Code.InvalidArgument)).toBe("invalid_argument");
    expect(outcomeOf(Code.Internal)).toBe("internal");
    expect(outcomeOf(Code.DeadlineExceeded)).toBe("deadline_exceeded");
    expect(outcomeOf(Code.Unauthenticated)).toBe("unauthenticated");
  });
});
