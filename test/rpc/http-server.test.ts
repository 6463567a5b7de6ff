import { request as httpRequest, Agent } from "node:http";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { base64Decode } from "@bufbuild/protobuf/wire";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { GetReservationRequestSchema } from "../../src/gen/creditd/v1/admin_service_pb.js";
import {
  GetBalanceRequestSchema,
  GetBalanceResponseSchema,
} from "../../src/gen/creditd/v1/credit_service_pb.js";
import { ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { type HttpServerHandle, parseAddr, startHttpServer } from "../../src/rpc/http-server.js";
import { instrument } from "../../src/rpc/instrument.js";
import type { CallContext } from "../../src/rpc/types.js";
import {
  INSUFFICIENT_MESSAGE,
  type LogCapture,
  type Probe,
  SECRET,
  adminBinding,
  captureLogs,
  creditBinding,
} from "./fixtures.js";

interface ConnectErrorBody {
  code: string;
  message?: string;
  details?: Array<{ type: string; value: string; debug?: Record<string, unknown> }>;
}

function post(port: number, path: string, body: unknown): Promise<Response> {
  return fetch(`http://127.0.0.1:${port}/${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

describe("HTTP (Connect) edge", () => {
  let server: HttpServerHandle;
  let logs: LogCapture;

  beforeAll(async () => {
    logs = captureLogs();
    server = await startHttpServer({
      addr: "127.0.0.1:0",
      bindings: [instrument(creditBinding(), logs.logger), instrument(adminBinding(), logs.logger)],
      logger: logs.logger,
    });
  });

  afterAll(async () => {
    await server?.close(1000);
  });

  it("round-trips JSON (the documented curl call)", async () => {
    const res = await post(server.port, "creditd.v1.CreditService/GetBalance", { accountId: "acme" });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    const body = (await res.json()) as Record<string, unknown>;
    // int64 as strings (proto3 JSON), zero values emitted.
    expect(body).toMatchObject({ accountId: "acme", availableMicros: "70000000", heldMicros: "0", buckets: [] });
  });

  it("round-trips JSON with a oneof, a timestamp and an enum", async () => {
    const res = await post(server.port, "creditd.v1.CreditService/Reserve", {
      accountId: "acme",
      requestId: "r1",
      amountMicros: "30000000",
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      reservationId: "rsv_r1",
      heldMicros: "30000000",
      availableMicros: "40000000",
      expiresAt: "2023-11-14T22:13:20Z",
      heldFrom: [{ bucketId: "b1", amountMicros: "30000000" }],
    });
    const refund = await post(server.port, "creditd.v1.CreditService/Refund", { reservationId: "rsv_r1" });
    expect(await refund.json()).toMatchObject({ state: "RESERVATION_STATE_REFUNDED" });
  });

  it("round-trips binary protobuf", async () => {
    const res = await fetch(`http://127.0.0.1:${server.port}/creditd.v1.CreditService/GetBalance`, {
      method: "POST",
      headers: { "Content-Type": "application/proto" },
      body: toBinary(GetBalanceRequestSchema, create(GetBalanceRequestSchema, { accountId: "acme" })),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/proto");
    const msg = fromBinary(GetBalanceResponseSchema, new Uint8Array(await res.arrayBuffer()));
    expect(msg.accountId).toBe("acme");
    expect(msg.availableMicros).toBe(70_000_000n);
  });

  it("sends a ConnectError as a Connect JSON error with the ErrorInfo detail", async () => {
    const res = await post(server.port, "creditd.v1.CreditService/Reserve", {
      accountId: "acme",
      requestId: "r2",
      amountMicros: "80000000",
    });
    expect(res.status).toBe(429);
    expect(res.headers.get("content-type")).toBe("application/json");
    const body = (await res.json()) as ConnectErrorBody;
    expect(body.code).toBe("resource_exhausted");
    expect(body.message).toBe(INSUFFICIENT_MESSAGE);
    expect(body.details).toHaveLength(1);
    const [detail] = body.details ?? [];
    expect(detail?.type).toBe("google.rpc.ErrorInfo");
    // value: the binary ErrorInfo, base64 without padding.
    const info = fromBinary(ErrorInfoSchema, base64Decode(detail?.value ?? ""));
    expect(info.reason).toBe("INSUFFICIENT_CREDITS");
    expect(info.metadata).toEqual({ available_micros: "70000000", required_micros: "80000000" });
    // debug: the same detail as proto3 JSON, emitted by connect by default.
    expect(detail?.debug).toEqual({
      reason: "INSUFFICIENT_CREDITS",
      domain: "creditd",
      metadata: { available_micros: "70000000", required_micros: "80000000" },
    });
  });

  it("sends the error for a binary request as JSON too", async () => {
    const res = await fetch(`http://127.0.0.1:${server.port}/creditd.v1.AdminService/GetReservation`, {
      method: "POST",
      headers: { "Content-Type": "application/proto" },
      body: toBinary(GetReservationRequestSchema, create(GetReservationRequestSchema, { reservationId: "rsv_x" })),
    });
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(await res.json()).toEqual({ code: "not_found", message: "reservation rsv_x not found" });
  });

  it("turns a plain Error into internal 'internal error', cause only in the log", async () => {
    const res = await post(server.port, "creditd.v1.CreditService/Reserve", { accountId: "acme", requestId: "boom" });
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({ code: "internal", message: "internal error" });
    expect(text).not.toContain("secret");
    expect([...res.headers.entries()].join(" ")).not.toContain("secret");
    expect(logs.raw.join("")).toContain(SECRET);
  });

  it("keeps the cause off the wire for a binding that was not instrumented", async () => {
    const local = captureLogs();
    const bare = await startHttpServer({ addr: "127.0.0.1:0", bindings: [creditBinding()], logger: local.logger });
    try {
      const res = await post(bare.port, "creditd.v1.CreditService/Reserve", { requestId: "boom" });
      expect(await res.json()).toEqual({ code: "internal", message: "internal error" });
      expect(local.raw.join("")).toContain(SECRET);
    } finally {
      await bare.close(1000);
    }
  });

  it("answers unknown paths with 404 and wrong methods per protocol", async () => {
    const res = await post(server.port, "creditd.v1.CreditService/Nope", {});
    expect(res.status).toBe(404);
    const get = await fetch(`http://127.0.0.1:${server.port}/creditd.v1.CreditService/GetBalance`);
    expect(get.status).toBe(405);
  });
});

describe("HTTP close()", () => {
  it("lets an in-flight request finish, refuses new connections, closes idle keep-alive sockets", async () => {
    const logs = captureLogs();
    let release: (() => void) | undefined;
    const probe: Probe = {
      gate: () =>
        new Promise<void>((resolve) => {
          release = resolve;
        }),
    };
    const s = await startHttpServer({ addr: "127.0.0.1:0", bindings: [creditBinding(probe)], logger: logs.logger });

    // An idle keep-alive connection: it must not hold close() up.
    const agent = new Agent({ keepAlive: true });
    const idleSocketClosed = new Promise<void>((resolve) => {
      const req = httpRequest(
        { port: s.port, host: "127.0.0.1", method: "POST", path: "/creditd.v1.CreditService/GetBalance", agent, headers: { "content-type": "application/json" } },
        (res) => {
          res.resume();
          res.on("end", () => req.socket?.once("close", () => resolve()));
        },
      );
      req.end("{}");
    });

    const inFlight = post(s.port, "creditd.v1.CreditService/Settle", { reservationId: "a", chargeMicros: "3" });
    await vi.waitFor(() => expect(release).toBeDefined());

    let closed = false;
    const closing = s.close(5000).then(() => {
      closed = true;
    });
    await idleSocketClosed;
    await expect(post(s.port, "creditd.v1.CreditService/GetBalance", {})).rejects.toThrow();
    expect(closed).toBe(false);

    release?.();
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(res.headers.get("connection")).toBe("close");
    expect(await res.json()).toMatchObject({ chargedMicros: "3" });
    // Promptly: not after the keep-alive timeout (5 s) or the close deadline.
    const t0 = Date.now();
    await closing;
    expect(Date.now() - t0).toBeLessThan(1000);
    agent.destroy();
  });

  it("aborts handlers and drops connections at the deadline", async () => {
    const logs = captureLogs();
    let ctx: CallContext | undefined;
    const probe: Probe = {
      gate: (c) => {
        ctx = c;
        return new Promise<void>(() => {}); // never finishes on its own
      },
    };
    const s = await startHttpServer({ addr: "127.0.0.1:0", bindings: [creditBinding(probe)], logger: logs.logger });
    const stuck = post(s.port, "creditd.v1.CreditService/Settle", { reservationId: "a" }).then(
      (r) => r.status,
      () => "failed",
    );
    await vi.waitFor(() => expect(ctx).toBeDefined());
    const t0 = Date.now();
    await s.close(150);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(100);
    expect(ctx?.signal.aborted).toBe(true);
    expect(await stuck).toBe("failed");
  });
});

describe("parseAddr", () => {
  it("parses host:port forms", () => {
    expect(parseAddr("127.0.0.1:8080")).toEqual({ host: "127.0.0.1", port: 8080 });
    expect(parseAddr("[::1]:0")).toEqual({ host: "::1", port: 0 });
    expect(parseAddr(":8080")).toEqual({ host: undefined, port: 8080 });
    expect(() => parseAddr("8080")).toThrow(/host:port/);
    expect(() => parseAddr("h:99999")).toThrow();
  });
});
