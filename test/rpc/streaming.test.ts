// Server streaming on both edges, with a fixture WatchEvents handler (no Redis: the edges are what is tested
// here; test/events/watch.test.ts runs the real one on real events). The request's account_id picks what the
// handler does.
import { request as httpRequest } from "node:http";
import { create, fromBinary } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CreditService } from "../../src/gen/creditd/v1/credit_service_pb.js";
import { EventService, WatchEventsResponseSchema } from "../../src/gen/creditd/v1/event_service_pb.js";
import { ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../src/gen/google/rpc/status_pb.js";
import { type GrpcServerHandle, STATUS_DETAILS_KEY, startGrpcServer } from "../../src/rpc/grpc-server.js";
import { type HttpServerHandle, startHttpServer } from "../../src/rpc/http-server.js";
import { instrument } from "../../src/rpc/instrument.js";
import type { ServiceBinding } from "../../src/rpc/types.js";
import { type TestStream, grpcStream, jsonStream } from "../support/watch.js";
import { type LogCapture, type Probe, SECRET, callUnary, captureLogs, creditBinding, grpcClient } from "./fixtures.js";

const WATCH = EventService.method.watchEvents;
const RPC = "creditd.v1.EventService/WatchEvents";

/** What the fixture saw of one call, by account_id. */
interface CallProbe {
  signal?: AbortSignal;
  produced: number;
  finished: boolean;
}

const calls = new Map<string, CallProbe>();
const probeOf = (key: string): CallProbe => {
  let p = calls.get(key);
  if (!p) calls.set(key, (p = { produced: 0, finished: false }));
  return p;
};

const event = (i: number, reason = "") =>
  create(WatchEventsResponseSchema, {
    event: { id: `e${i}`, type: "refund", accountId: "fixture", detail: { case: "refund", value: { reason } } },
  });

/**
 * "count-<n>-<tag>": n messages, then OK. "fail-<n>-<tag>": n, then FAILED_PRECONDITION with an ErrorInfo.
 * "boom-<n>-<tag>": n, then a plain Error (INTERNAL on the wire). "hang-<tag>": one, then waits for its signal.
 * "deaf-<tag>": one, then never ends and ignores its signal. "flood-<n>-<tag>": n messages of 64 KiB.
 */
function fixtureBinding(): ServiceBinding<typeof EventService> {
  return {
    service: EventService,
    handlers: {
      async *watchEvents(req, ctx) {
        const p = probeOf(req.accountId);
        p.signal = ctx.signal;
        const [kind, n] = req.accountId.split("-");
        const count = Number(n);
        try {
          switch (kind) {
            case "count":
            case "fail":
            case "boom":
              for (let i = 0; i < count; i++) {
                p.produced++;
                yield event(i);
              }
              if (kind === "fail") {
                throw new ConnectError("the fixture gave up", Code.FailedPrecondition, undefined, [
                  { desc: ErrorInfoSchema, value: { reason: "FIXTURE_GAVE_UP", domain: "creditd", metadata: { after: n! } } },
                ]);
              }
              if (kind === "boom") throw new Error(SECRET);
              return;
            case "hang":
              p.produced++;
              yield event(0);
              await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
              return;
            case "deaf":
              p.produced++;
              yield event(0);
              await new Promise(() => {});
              return;
            case "flood": {
              const big = "x".repeat(64 * 1024);
              for (let i = 0; i < count && !ctx.signal.aborted; i++) {
                p.produced++;
                yield event(i, big);
              }
              return;
            }
            default:
              throw new ConnectError(`unknown fixture ${req.accountId}`, Code.InvalidArgument);
          }
        } finally {
          p.finished = true;
        }
      },
    },
  };
}

interface PausedReader {
  resume(): void;
  /** Resolves at the end of a complete, successful stream. */
  done: Promise<void>;
  bytes(): number;
}

/** A gRPC stream whose reading stops after its first message, until resume(). */
function pausableGrpc(accountId: string): PausedReader {
  const s = grpcStream(`127.0.0.1:${grpcPort}`, WATCH, { accountId });
  let bytes = 0;
  const done = (async () => {
    await s.next();
    s.pause();
    const end = await s.ended(25_000);
    if (end.code !== 0) throw new Error(`stream ended with ${end.code}: ${end.message}`);
    for (const m of s.received) bytes += m.event?.detail.case === "refund" ? m.event.detail.value.reason.length : 0;
  })();
  return { resume: () => s.resume(), done, bytes: () => bytes };
}

/**
 * The Connect streaming request made with node:http (an enveloped `{}` as application/connect+json), reading the
 * first chunk and then nothing until resume().
 */
function pausableConnect(port: number, accountId: string): Promise<PausedReader> {
  const json = Buffer.from(JSON.stringify({ accountId }));
  const envelope = Buffer.alloc(5);
  envelope.writeUInt32BE(json.length, 1);
  return new Promise((resolveReader, reject) => {
    const req = httpRequest(
      {
        host: "127.0.0.1",
        port,
        method: "POST",
        path: "/creditd.v1.EventService/WatchEvents",
        headers: { "content-type": "application/connect+json" },
      },
      (res) => {
        let bytes = 0;
        let tail = "";
        const done = new Promise<void>((resolve, rejectDone) => {
          res.on("data", (chunk: Buffer) => {
            bytes += chunk.length;
            tail = (tail + chunk.toString("latin1")).slice(-200);
          });
          res.on("end", () =>
            // The end-of-stream message (flag 2) is `{}` when the stream ended OK, `{"error":…}` otherwise.
            tail.endsWith("{}") ? resolve() : rejectDone(new Error(`stream did not end OK: …${tail}`)),
          );
          res.on("error", rejectDone);
        });
        res.once("data", () => {
          res.pause();
          resolveReader({ resume: () => res.resume(), done, bytes: () => bytes });
        });
      },
    );
    req.on("error", reject);
    req.end(Buffer.concat([envelope, json]));
  });
}

async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Edge = "grpc" | "json";
let grpcPort = 0;

describe("server streaming on both edges", () => {
  let grpc: GrpcServerHandle;
  let http: HttpServerHandle;
  let logs: LogCapture;
  const open = (edge: Edge, accountId: string, opts: { deadlineMs?: number } = {}): TestStream<{ event?: { id: string } }> =>
    edge === "grpc"
      ? grpcStream(`127.0.0.1:${grpc.port}`, WATCH, { accountId }, opts)
      : jsonStream(`http://127.0.0.1:${http.port}`, WATCH, { accountId }, opts.deadlineMs ? { timeoutMs: opts.deadlineMs } : {});
  const logLinesOf = (accountId: string) => logs.lines.filter((l) => l["rpc"] === RPC && l["account_id"] === accountId);

  beforeAll(async () => {
    logs = captureLogs();
    const bindings = [instrument(fixtureBinding(), logs.logger)];
    grpc = await startGrpcServer({ addr: "127.0.0.1:0", bindings, logger: logs.logger });
    http = await startHttpServer({ addr: "127.0.0.1:0", bindings, logger: logs.logger });
    grpcPort = grpc.port;
  });

  afterAll(async () => {
    await Promise.all([grpc?.shutdown(1000), http?.close(1000)]);
  });

  describe.each<Edge>(["grpc", "json"])("%s", (edge) => {
    it("streams every message in order, then ends OK; one log line with the count", async () => {
      const key = `count-5-${edge}`;
      const s = open(edge, key);
      expect(await s.ended()).toMatchObject({ code: 0 });
      expect(s.received.map((m) => m.event?.id)).toEqual(["e0", "e1", "e2", "e3", "e4"]);
      await until("the log line", () => logLinesOf(key).length > 0);
      const [line, ...more] = logLinesOf(key);
      expect(more).toEqual([]);
      expect(line).toMatchObject({ rpc: RPC, outcome: "ok", messages: 5, account_id: key });
      expect(typeof line!["latency_ms"]).toBe("number");
    });

    it("an error thrown mid-stream reaches the client with its code, message and ErrorInfo, after the messages", async () => {
      const key = `fail-2-${edge}`;
      const s = open(edge, key);
      const end = await s.ended();
      expect(s.received.map((m) => m.event?.id)).toEqual(["e0", "e1"]);
      expect(end.code).toBe(Code.FailedPrecondition);
      expect(end.message).toBe("the fixture gave up");
      let info;
      if (edge === "grpc") {
        const raw = (end.error as ServiceError).metadata.get(STATUS_DETAILS_KEY)[0] as Buffer;
        info = anyUnpack(fromBinary(StatusSchema, raw).details[0]!, ErrorInfoSchema);
      } else {
        info = (end.error as ConnectError).findDetails(ErrorInfoSchema)[0];
      }
      expect(info).toMatchObject({ reason: "FIXTURE_GAVE_UP", metadata: { after: "2" } });
      await until("the log line", () => logLinesOf(key).length > 0);
      expect(logLinesOf(key)[0]).toMatchObject({ outcome: "failed_precondition", messages: 2 });
    });

    it("anything else thrown mid-stream is INTERNAL 'internal error' on the wire and logged with its cause", async () => {
      const key = `boom-1-${edge}`;
      const s = open(edge, key);
      const end = await s.ended();
      expect(s.received).toHaveLength(1);
      expect(end).toMatchObject({ code: Code.Internal, message: "internal error" });
      await until("the log line", () => logLinesOf(key).length > 0);
      const line = logLinesOf(key)[0]!;
      expect(line).toMatchObject({ outcome: "internal", messages: 1, level: 50 });
      expect(JSON.stringify(line)).toContain(SECRET);
    });

    it("a client cancel aborts the handler's signal (CANCELED) and runs its finally", async () => {
      const key = `hang-${edge}`;
      const s = open(edge, key);
      expect((await s.next()).event?.id).toBe("e0");
      const p = probeOf(key);
      expect(p.signal?.aborted).toBe(false);
      s.cancel();
      await until("the handler to finish", () => p.finished);
      expect(p.signal?.aborted).toBe(true);
      expect((p.signal?.reason as ConnectError).code).toBe(Code.Canceled);
      expect((await s.ended()).code).toBe(Code.Canceled);
      await until("the log line", () => logLinesOf(key).length > 0);
      expect(logLinesOf(key)[0]).toMatchObject({ outcome: "canceled", messages: 1 });
    });

    it("a deadline ends the stream with DEADLINE_EXCEEDED and aborts the handler", async () => {
      const key = `hang-deadline-${edge}`;
      const s = open(edge, key, { deadlineMs: 300 });
      expect((await s.next()).event?.id).toBe("e0");
      expect((await s.ended()).code).toBe(Code.DeadlineExceeded);
      const p = probeOf(key);
      await until("the handler to finish", () => p.finished);
      // gRPC: grpc-js enforces the deadline on the server. Connect over HTTP/1.1: the client's own timer usually
      // closes the connection before the server's (started when the request arrived) fires.
      const reason = (p.signal?.reason as ConnectError).code;
      if (edge === "grpc") expect(reason).toBe(Code.DeadlineExceeded);
      else expect([Code.DeadlineExceeded, Code.Canceled]).toContain(reason);
      await until("the log line", () => logLinesOf(key).length > 0);
      // The log says what the handler's signal said.
      expect(logLinesOf(key)[0]!["outcome"]).toBe(reason === Code.DeadlineExceeded ? "deadline_exceeded" : "canceled");
    });

    it("respects backpressure: a client that stops reading stops the handler, which resumes when it reads again", async () => {
      // 1000 × 64 KiB = 64 MiB: more than HTTP/2's windows and than loopback TCP buffers hold (Linux lets a
      // receive buffer grow to tcp_rmem's max, 32 MiB here).
      const total = 1000;
      const key = `flood-${total}-${edge}`;
      const p = probeOf(key);
      const reader = edge === "grpc" ? pausableGrpc(key) : await pausableConnect(http.port, key);
      // Let the buffers fill, then the handler must stand still.
      let last = -1;
      for (let i = 0; i < 50 && p.produced !== last; i++) {
        last = p.produced;
        await sleep(200);
      }
      expect(p.produced).toBe(last);
      expect(p.produced).toBeLessThan(total / 2);
      reader.resume();
      await reader.done;
      expect(p.produced).toBe(total);
      expect(reader.bytes()).toBeGreaterThanOrEqual(total * 64 * 1024);
    }, 30_000);
  });
});

describe("graceful shutdown with open streams", () => {
  it.each<Edge>(["grpc", "json"])(
    "%s: open streams end at once with UNAVAILABLE 'server shutting down' while a unary call in flight completes",
    async (edge) => {
      const logs = captureLogs();
      const gate: Probe = {};
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      gate.gate = () => released;
      const bindings = [instrument(fixtureBinding(), logs.logger), instrument(creditBinding(gate), logs.logger)];
      const grpc = await startGrpcServer({ addr: "127.0.0.1:0", bindings, logger: logs.logger });
      const http = await startHttpServer({ addr: "127.0.0.1:0", bindings, logger: logs.logger });
      const unaryClient = grpcClient(grpc.port);
      try {
        const keys = [`hang-shutdown-${edge}`, `deaf-shutdown-${edge}`];
        const streams = keys.map((accountId) =>
          edge === "grpc"
            ? grpcStream(`127.0.0.1:${grpc.port}`, WATCH, { accountId })
            : jsonStream(`http://127.0.0.1:${http.port}`, WATCH, { accountId }),
        );
        for (const s of streams) await s.next();
        // A unary call held open by the gate while the shutdown begins.
        const settle =
          edge === "grpc"
            ? callUnary(unaryClient, CreditService.method.settle, { reservationId: "a:r", cost: { case: "chargeMicros", value: 7n } })
            : fetch(`http://127.0.0.1:${http.port}/creditd.v1.CreditService/Settle`, {
                method: "POST",
                headers: { "content-type": "application/json" },
                body: JSON.stringify({ reservationId: "a:r", chargeMicros: "7" }),
              }).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, unknown> }));
        await until("the unary call to reach its handler", () => gate.lastContext !== undefined);

        const started = Date.now();
        const stopping = Promise.all([grpc.shutdown(20_000), http.close(20_000)]);
        for (const s of streams) {
          expect(await s.ended(2000)).toMatchObject({ code: Code.Unavailable, message: "server shutting down" });
        }
        expect(Date.now() - started).toBeLessThan(2000);
        // The well-behaved handler saw its signal abort with that reason; the deaf one was cut off regardless.
        expect((probeOf(keys[0]!).signal?.reason as ConnectError).code).toBe(Code.Unavailable);
        await until("the hang handler to finish", () => probeOf(keys[0]!).finished);

        // The unary call was not cut off: it completes once its handler answers.
        expect(gate.lastContext?.signal.aborted).toBe(false);
        release();
        const reply = await settle;
        if (edge === "grpc") expect((reply as { chargedMicros: bigint }).chargedMicros).toBe(7n);
        else expect(reply).toMatchObject({ status: 200, body: { chargedMicros: "7" } });
        await stopping;
        expect(Date.now() - started).toBeLessThan(5000);
        await until("the log line", () => logs.lines.some((l) => l["account_id"] === keys[0]));
        expect(logs.lines.find((l) => l["account_id"] === keys[0])).toMatchObject({ outcome: "unavailable", messages: 1 });
      } finally {
        release();
        unaryClient.close();
        await Promise.all([grpc.shutdown(100), http.close(100)]);
      }
    },
    15_000,
  );
});
