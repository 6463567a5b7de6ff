import { connect as http2Connect, constants as h2 } from "node:http2";
import { fileURLToPath } from "node:url";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, anyUnpack, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { type Client, Metadata, type ServiceDefinition, status as GrpcStatus } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { service as healthService } from "grpc-health-check";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { AdminService } from "../../src/gen/creditd/v1/admin_service_pb.js";
import { CreditService, ReserveRequestSchema } from "../../src/gen/creditd/v1/credit_service_pb.js";
import { ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../src/gen/google/rpc/status_pb.js";
import { type GrpcServerHandle, STATUS_DETAILS_KEY, startGrpcServer } from "../../src/rpc/grpc-server.js";
import { instrument } from "../../src/rpc/instrument.js";
import type { CallContext } from "../../src/rpc/types.js";
import {
  AVAILABLE,
  INSUFFICIENT_MESSAGE,
  type LogCapture,
  type Probe,
  SECRET,
  adminBinding,
  callUnary,
  captureLogs,
  creditBinding,
  grpcClient,
  isServiceError,
  rejection,
} from "./fixtures.js";

describe("gRPC edge", () => {
  let server: GrpcServerHandle;
  let client: Client;
  let logs: LogCapture;
  const probe: Probe = {};

  beforeAll(async () => {
    logs = captureLogs();
    server = await startGrpcServer({
      addr: "127.0.0.1:0",
      bindings: [instrument(creditBinding(probe), logs.logger), instrument(adminBinding(), logs.logger)],
      logger: logs.logger,
    });
    client = grpcClient(server.port);
  });

  afterAll(async () => {
    client?.close();
    await server?.shutdown(1000);
  });

  it("binds a free port for host:0", () => {
    expect(server.port).toBeGreaterThan(0);
  });

  it("round-trips a unary call", async () => {
    const res = await callUnary(client, CreditService.method.reserve, {
      accountId: "acme",
      requestId: "r1",
      cost: { case: "amountMicros", value: 30_000_000n },
    });
    expect(res.reservationId).toBe("rsv_r1");
    expect(res.heldMicros).toBe(30_000_000n);
    expect(res.availableMicros).toBe(AVAILABLE - 30_000_000n);
    expect(res.expiresAt && timestampMs(res.expiresAt)).toBe(1_700_000_000_000);
    expect(res.heldFrom.map((b) => [b.bucketId, b.amountMicros])).toEqual([["b1", 30_000_000n]]);
    // The handler got a live signal.
    expect(probe.lastContext?.signal.aborted).toBe(false);

    const grant = await callUnary(client, AdminService.method.grant, { accountId: "acme", grantId: "g1", amountMicros: 9n });
    expect(grant.bucket?.bucketId).toBe("g1");
    expect(grant.availableMicros).toBe(9n);
  });

  it("sends a ConnectError as the same gRPC code, message and an ErrorInfo in grpc-status-details-bin", async () => {
    const err = await rejection(
      callUnary(client, CreditService.method.reserve, {
        accountId: "acme",
        requestId: "r2",
        cost: { case: "amountMicros", value: 80_000_000n },
      }),
    );
    if (!isServiceError(err)) throw err;
    expect(err.code).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
    expect(err.code).toBe(8);
    expect(err.details).toBe(INSUFFICIENT_MESSAGE);

    const [bin] = err.metadata.get(STATUS_DETAILS_KEY);
    expect(bin).toBeInstanceOf(Buffer);
    const status = fromBinary(StatusSchema, bin as Buffer);
    expect(status.code).toBe(8);
    expect(status.message).toBe(INSUFFICIENT_MESSAGE);
    expect(status.details).toHaveLength(1);
    expect(status.details[0]?.typeUrl).toBe("type.googleapis.com/google.rpc.ErrorInfo");
    const info = status.details[0] && anyUnpack(status.details[0], ErrorInfoSchema);
    expect(info?.reason).toBe("INSUFFICIENT_CREDITS");
    expect(info?.domain).toBe("creditd");
    expect(info?.metadata).toEqual({ available_micros: "70000000", required_micros: "80000000" });
  });

  it("sends an error without details without grpc-status-details-bin", async () => {
    const err = await rejection(callUnary(client, AdminService.method.getReservation, { reservationId: "rsv_x" }));
    if (!isServiceError(err)) throw err;
    expect(err.code).toBe(GrpcStatus.NOT_FOUND);
    expect(err.details).toBe("reservation rsv_x not found");
    expect(err.metadata.get(STATUS_DETAILS_KEY)).toEqual([]);
  });

  it("turns a plain Error into INTERNAL 'internal error' and logs the cause", async () => {
    const err = await rejection(
      callUnary(client, CreditService.method.reserve, { accountId: "acme", requestId: "boom" }),
    );
    if (!isServiceError(err)) throw err;
    expect(err.code).toBe(GrpcStatus.INTERNAL);
    expect(err.details).toBe("internal error");
    expect(JSON.stringify(err.metadata.getMap())).not.toContain("secret");

    const line = logs.lines.find((l) => l["request_id"] === "boom");
    expect(line).toMatchObject({ level: 50, outcome: "internal", rpc: "creditd.v1.CreditService/Reserve" });
    expect((line?.["err"] as { message?: string } | undefined)?.message).toBe(SECRET);
  });

  it("keeps the cause off the wire: raw HTTP/2 headers, body and trailers", async () => {
    // Below grpc-js's client, so nothing it parses or drops can hide a leak.
    const session = http2Connect(`http://127.0.0.1:${server.port}`);
    try {
      const req = session.request({
        [h2.HTTP2_HEADER_METHOD]: "POST",
        [h2.HTTP2_HEADER_PATH]: "/creditd.v1.CreditService/Reserve",
        [h2.HTTP2_HEADER_CONTENT_TYPE]: "application/grpc",
        te: "trailers",
      });
      const body = toBinary(ReserveRequestSchema, create(ReserveRequestSchema, { accountId: "acme", requestId: "boom" }));
      const frame = Buffer.alloc(5 + body.length);
      frame.writeUInt32BE(body.length, 1);
      frame.set(body, 5);
      req.end(frame);
      const seen: string[] = [];
      req.on("response", (headers) => seen.push(JSON.stringify(headers)));
      req.on("trailers", (trailers) => seen.push(JSON.stringify(trailers)));
      req.on("data", (chunk: Buffer) => seen.push(chunk.toString("latin1")));
      await new Promise<void>((resolve, reject) => {
        req.on("end", resolve);
        req.on("error", reject);
      });
      const wire = seen.join("\n");
      expect(wire).toContain('"grpc-status":"13"');
      expect(wire).toContain("internal%20error");
      expect(wire.toLowerCase()).not.toContain("secret");
    } finally {
      session.close();
    }
  });

  it("keeps the cause off the wire for a binding that was not instrumented", async () => {
    const local = captureLogs();
    const bare = await startGrpcServer({ addr: "127.0.0.1:0", bindings: [creditBinding()], logger: local.logger });
    const c = grpcClient(bare.port);
    try {
      const err = await rejection(callUnary(c, CreditService.method.reserve, { requestId: "boom" }));
      if (!isServiceError(err)) throw err;
      expect(err.code).toBe(GrpcStatus.INTERNAL);
      expect(err.details).toBe("internal error");
      expect(local.raw.join("")).toContain(SECRET);
    } finally {
      c.close();
      await bare.shutdown(1000);
    }
  });

  it("answers server reflection without .proto files", async () => {
    const protoPath = fileURLToPath(
      new URL("../../node_modules/@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto", import.meta.url),
    );
    const pkg = loadSync(protoPath, { longs: String, enums: String, defaults: true, oneofs: true });
    const def = pkg["grpc.reflection.v1.ServerReflection"] as ServiceDefinition;
    const info = def["ServerReflectionInfo"];
    if (!info) throw new Error("ServerReflectionInfo missing from reflection.proto");

    interface ReflectionResponse {
      listServicesResponse?: { service: Array<{ name: string }> };
      fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
      errorResponse?: { errorCode: number; errorMessage: string };
    }
    const stream = client.makeBidiStreamRequest<object, ReflectionResponse>(
      info.path,
      info.requestSerialize,
      info.responseDeserialize,
    );
    const responses: ReflectionResponse[] = [];
    const done = new Promise<void>((resolve, reject) => {
      stream.on("data", (r: ReflectionResponse) => responses.push(r));
      stream.on("end", resolve);
      stream.on("error", reject);
    });
    stream.write({ listServices: "*" });
    stream.write({ fileContainingSymbol: "creditd.v1.CreditService" });
    stream.write({ fileContainingSymbol: "creditd.v1.AdminService" });
    stream.write({ fileContainingSymbol: "google.rpc.ErrorInfo" });
    stream.write({ fileContainingSymbol: "grpc.health.v1.Health" });
    stream.end();
    await done;

    expect(responses).toHaveLength(5);
    const [list, creditFile, adminFile, errorInfoFile, healthFile] = responses;
    expect(responses.map((r) => r.errorResponse)).toEqual([undefined, undefined, undefined, undefined, undefined]);
    const names = list?.listServicesResponse?.service.map((s) => s.name) ?? [];
    expect(names).toEqual(expect.arrayContaining(["creditd.v1.CreditService", "creditd.v1.AdminService", "grpc.health.v1.Health"]));

    // The symbol's file comes first, then its transitive imports.
    const files = (creditFile?.fileDescriptorResponse?.fileDescriptorProto ?? []).map((b) =>
      fromBinary(FileDescriptorProtoSchema, b),
    );
    expect(files[0]?.name).toBe("creditd/v1/credit_service.proto");
    const svc = files[0]?.service.find((s) => s.name === "CreditService");
    const reserve = svc?.method.find((m) => m.name === "Reserve");
    expect(reserve?.inputType).toBe(".creditd.v1.ReserveRequest");
    expect(reserve?.outputType).toBe(".creditd.v1.ReserveResponse");
    expect(files.map((f) => f.name)).toEqual(
      expect.arrayContaining(["creditd/v1/types.proto", "google/protobuf/timestamp.proto"]),
    );

    const adminFiles = (adminFile?.fileDescriptorResponse?.fileDescriptorProto ?? []).map((b) =>
      fromBinary(FileDescriptorProtoSchema, b),
    );
    expect(adminFiles[0]?.service.map((s) => s.name)).toEqual(["AdminService"]);

    // So clients can decode the ErrorInfo detail of an error.
    const errorInfo = fromBinary(FileDescriptorProtoSchema, errorInfoFile?.fileDescriptorResponse?.fileDescriptorProto[0] ?? new Uint8Array());
    expect(errorInfo.messageType.map((m) => m.name)).toContain("ErrorInfo");

    // The health file as protoc would describe it: fully qualified names, a proper map entry.
    const health = fromBinary(FileDescriptorProtoSchema, healthFile?.fileDescriptorResponse?.fileDescriptorProto[0] ?? new Uint8Array());
    expect(health.name).toBe("grpc/health/v1/health.proto");
    expect(health.service[0]?.method.map((m) => m.name)).toEqual(["Check", "List", "Watch"]);
    const typeNames = health.messageType.flatMap((m) => [...m.field, ...m.nestedType.flatMap((n) => n.field)].map((f) => f.typeName));
    for (const t of typeNames.filter((n) => n !== "")) {
      expect(t.startsWith(".grpc.health.v1.")).toBe(true);
    }
  });

  it("serves health: SERVING, then NOT_SERVING after setServing(false)", async () => {
    const check = healthService["Check"];
    if (!check) throw new Error("Check missing from health service");
    const call = (service: string): Promise<{ status: string }> =>
      new Promise((resolve, reject) => {
        client.makeUnaryRequest(
          check.path,
          check.requestSerialize,
          // grpc-health-check loads health.proto with enums as strings.
          (buf: Buffer) => check.responseDeserialize(buf) as { status: string },
          { service },
          (err, res) => (err ? reject(err) : res ? resolve(res) : reject(new Error("no response"))),
        );
      });

    expect((await call("")).status).toBe("SERVING");
    expect((await call("creditd.v1.CreditService")).status).toBe("SERVING");
    expect((await call("creditd.v1.AdminService")).status).toBe("SERVING");

    server.health.setServing(false);
    try {
      expect((await call("")).status).toBe("NOT_SERVING");
      expect((await call("creditd.v1.CreditService")).status).toBe("NOT_SERVING");
    } finally {
      server.health.setServing(true);
    }
    expect((await call("")).status).toBe("SERVING");

    const unknown = await rejection(call("nope.Service"));
    expect(isServiceError(unknown) && unknown.code).toBe(GrpcStatus.NOT_FOUND);
  });

  it("passes the deadline to the handler as an aborted signal", async () => {
    let seen: CallContext | undefined;
    const local = captureLogs();
    const slow = creditBinding({
      gate: (ctx) => {
        seen = ctx;
        return new Promise((resolve) => ctx.signal.addEventListener("abort", () => resolve(), { once: true }));
      },
    });
    const s = await startGrpcServer({ addr: "127.0.0.1:0", bindings: [instrument(slow, local.logger)], logger: local.logger });
    const c = grpcClient(s.port);
    try {
      const err = await rejection(
        new Promise((resolve, reject) => {
          const m = CreditService.method.settle;
          c.makeUnaryRequest(
            `/${m.parent.typeName}/${m.name}`,
            (msg: object) => Buffer.from(toBinary(m.input, create(m.input, msg))),
            (buf: Buffer) => fromBinary(m.output, buf),
            { reservationId: "rsv_1" },
            new Metadata(),
            { deadline: Date.now() + 200 },
            (e, r) => (e ? reject(e) : resolve(r)),
          );
        }),
      );
      expect(isServiceError(err) && err.code).toBe(GrpcStatus.DEADLINE_EXCEEDED);
      await vi.waitFor(() => expect(seen?.signal.aborted).toBe(true));
    } finally {
      c.close();
      await s.shutdown(1000);
    }
  });

  it("shutdown waits for in-flight calls, then forces them at the deadline", async () => {
    const local = captureLogs();
    let release: (() => void) | undefined;
    let ctxSeen: CallContext | undefined;
    const probeLocal: Probe = {
      gate: (ctx) => {
        ctxSeen = ctx;
        return new Promise<void>((resolve) => {
          release = resolve;
        });
      },
    };
    const s = await startGrpcServer({ addr: "127.0.0.1:0", bindings: [creditBinding(probeLocal)], logger: local.logger });
    const c = grpcClient(s.port);
    try {
      // Graceful: the held call completes after shutdown started, and shutdown waits for it.
      const inFlight = callUnary(c, CreditService.method.settle, { reservationId: "a", cost: { case: "chargeMicros", value: 3n } });
      await vi.waitFor(() => expect(release !== undefined).toBe(true));
      const stopping = s.shutdown(5000);
      await new Promise((r) => setTimeout(r, 50));
      release?.();
      expect((await inFlight).chargedMicros).toBe(3n);
      await stopping;
    } finally {
      c.close();
    }

    // Forced: a call that never finishes is cut off at the deadline and its signal aborts.
    release = undefined;
    const s2 = await startGrpcServer({ addr: "127.0.0.1:0", bindings: [creditBinding(probeLocal)], logger: local.logger });
    const c2 = grpcClient(s2.port);
    try {
      const stuck = rejection(callUnary(c2, CreditService.method.settle, { reservationId: "b" }));
      await vi.waitFor(() => expect(release !== undefined).toBe(true));
      const t0 = Date.now();
      await s2.shutdown(150);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(100);
      const err = await stuck;
      expect(isServiceError(err) && [GrpcStatus.CANCELLED, GrpcStatus.UNAVAILABLE].includes(err.code)).toBe(true);
      await vi.waitFor(() => expect(ctxSeen?.signal.aborted).toBe(true));
    } finally {
      c2.close();
    }
  });
});

describe("Code numbering", () => {
  it("Connect codes are the gRPC codes", () => {
    expect(Code.ResourceExhausted).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
    expect(Code.Internal).toBe(GrpcStatus.INTERNAL);
    expect(Code.Unauthenticated).toBe(GrpcStatus.UNAUTHENTICATED);
  });
});
