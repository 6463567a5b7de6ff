// UsageService through both edges of a started app (gRPC and Connect JSON over HTTP/1.1): the unary calls answer
// what the handlers answer, and ExportUsage streams the same bytes on both, errors included.
import { type MessageInitShape, create, toJson } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { type Client, type ClientReadableStream, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type App, startApp } from "../../src/app.js";
import { CreditService } from "../../src/gen/creditd/v1/credit_service_pb.js";
import {
  ExportFormat,
  type ExportUsageRequestSchema,
  ListUsageResponseSchema,
  UsageService,
} from "../../src/gen/creditd/v1/usage_service_pb.js";
import { AdminService } from "../../src/gen/creditd/v1/admin_service_pb.js";
import { BucketKind } from "../../src/gen/creditd/v1/types_pb.js";
import { ManualClock } from "../../src/ledger/clock.js";
import { usageService } from "../../src/service/usage-service.js";
import { grpcServiceDefinition } from "../../src/rpc/grpc-server.js";
import { grpcClient, okJson, postJson, serviceError, statusDetails, unary } from "../e2e/clients.js";
import { HOUR, T0 } from "../support/ledger.js";
import { uniquePrefix, useTestRedis } from "../support/redis.js";

const env = useTestRedis();
let app: App;
let grpc: Client;
let credit: Client;
let admin: Client;
let base: string;
const clock = new ManualClock(T0);

beforeAll(async () => {
  app = await startApp({
    redis: env.redis,
    logger: pino({ level: "silent" }),
    clock,
    config: {
      grpcAddr: "127.0.0.1:0", httpAddr: "127.0.0.1:0", keyPrefix: uniquePrefix(), holdTtlDefaultSeconds: 60,
      holdTtlMaxSeconds: 600, idempotencyTtlSeconds: 3600, ledgerMaxEntries: 0, sweepIntervalSeconds: 0,
      shutdownTimeoutSeconds: 1, catalog: undefined, maxPromptBytes: 1 << 20, countInlineMaxBytes: 16384,
      countWorkers: 1, countCacheEntries: 100,
    },
  });
  const addr = `127.0.0.1:${app.grpcPort}`;
  grpc = grpcClient(UsageService, addr);
  credit = grpcClient(CreditService, addr);
  admin = grpcClient(AdminService, addr);
  base = `http://127.0.0.1:${app.httpPort}`;

  // Generations through the edge too: priced with the default catalog, one of them refunded.
  await unary(admin, AdminService.method.grant, { accountId: "acme", grantId: "g", amountMicros: 100_000_000n, kind: BucketKind.TOPUP });
  for (const [i, model] of ["gpt-4o", "gpt-4o-mini", "gpt-4o"].entries()) {
    const r = await unary(credit, CreditService.method.reserve, {
      accountId: "acme",
      requestId: `chat-${i}`,
      memberId: i === 1 ? "bo" : "ann",
      cost: { case: "priced", value: { model, input: { case: "inputTokens", value: 1000n }, maxOutputTokens: 200n } },
    });
    await unary(credit, CreditService.method.settle, {
      reservationId: r.reservationId,
      cost: { case: "usage", value: { inputTokens: 900n, outputTokens: BigInt(50 + i) } },
    });
    clock.advance(HOUR);
  }
  await unary(credit, CreditService.method.refund, { reservationId: "acme:chat-0", reason: "bad, \"really\"" });
}, 60_000);

afterAll(async () => {
  for (const c of [grpc, credit, admin]) c?.close();
  await app?.stop();
});

/** The handler itself, on the same ledger: what both edges must carry unchanged. */
const direct = () => usageService({ ledger: app.ledger });
const ctx = { signal: new AbortController().signal };

function grpcExport(req: MessageInitShape<typeof ExportUsageRequestSchema>): Promise<{ text: string; chunks: number }> {
  const def = grpcServiceDefinition(UsageService);
  const method = def["ExportUsage"]!;
  const call = grpc.makeServerStreamRequest(
    method.path,
    method.requestSerialize,
    method.responseDeserialize,
    create(UsageService.method.exportUsage.input, req),
    new Metadata(),
    { deadline: Date.now() + 10_000 },
  ) as ClientReadableStream<{ data: Uint8Array }>;
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    call.on("data", (m: { data: Uint8Array }) => parts.push(Buffer.from(m.data)));
    call.on("error", (err: ServiceError) => reject(err));
    call.on("end", () => resolve({ text: Buffer.concat(parts).toString("utf8"), chunks: parts.length }));
  });
}

async function connectExport(req: MessageInitShape<typeof ExportUsageRequestSchema>): Promise<string> {
  const client = createClient(UsageService, createConnectTransport({ baseUrl: base, httpVersion: "1.1", useBinaryFormat: false }));
  const parts: Buffer[] = [];
  for await (const m of client.exportUsage(req)) parts.push(Buffer.from(m.data));
  return Buffer.concat(parts).toString("utf8");
}

async function directExport(req: MessageInitShape<typeof ExportUsageRequestSchema>): Promise<string> {
  const parts: Buffer[] = [];
  for await (const m of direct().exportUsage(create(UsageService.method.exportUsage.input, req), ctx)) parts.push(Buffer.from(m.data));
  return Buffer.concat(parts).toString("utf8");
}

describe("ListUsage and GetUsageSummary", () => {
  it("gRPC and JSON answer what the handler answers", async () => {
    const req = { accountId: "acme", pageSize: 2 };
    const expected = await direct().listUsage(create(UsageService.method.listUsage.input, req), ctx);
    expect(expected.records.map((r) => r.requestId)).toEqual(["chat-0", "chat-2"]);
    expect(await unary(grpc, UsageService.method.listUsage, req)).toEqual(expected);
    const json = await okJson(base, "creditd.v1.UsageService/ListUsage", req);
    expect(json).toEqual(toJson(ListUsageResponseSchema, expected, { alwaysEmitImplicit: true }));
    // The page token goes on over the other edge.
    const next = await okJson(base, "creditd.v1.UsageService/ListUsage", { ...req, pageToken: expected.nextPageToken });
    expect((next["records"] as Array<{ requestId: string }>).map((r) => r.requestId)).toEqual(["chat-1", "chat-0"]);

    const summary = await okJson(base, "creditd.v1.UsageService/GetUsageSummary", { accountId: "acme", fromDate: "2026-01-15", toDate: "2026-01-15" });
    expect(summary["totals"]).toMatchObject({ generations: "3" });
    expect((summary["groups"] as Array<{ model: string }>).map((g) => g.model).sort()).toEqual(["gpt-4o", "gpt-4o-mini"]);
  });

  it("bad input is INVALID_ARGUMENT naming the field on both edges", async () => {
    const err = await serviceError(unary(grpc, UsageService.method.listUsage, { accountId: "acme", pageSize: 5000 }));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(statusDetails(err).errorInfo?.metadata).toEqual({ field: "page_size" });
    const reply = await postJson(base, "creditd.v1.UsageService/GetUsageSummary", { accountId: "acme", toDate: "2026-02-30" });
    expect(reply.status).toBe(400);
    expect(reply.body).toMatchObject({ code: "invalid_argument" });
    expect(String(reply.body["message"])).toMatch(/^to_date: /);
  });
});

describe("ExportUsage", () => {
  it.each([ExportFormat.CSV, ExportFormat.JSONL])("format %s: the same bytes over gRPC, Connect and the handler", async (format) => {
    const expected = await directExport({ accountId: "acme", format });
    expect(expected.split("\n").length).toBeGreaterThanOrEqual(4);
    const viaGrpc = await grpcExport({ accountId: "acme", format });
    expect(viaGrpc.text).toBe(expected);
    expect(await connectExport({ accountId: "acme", format })).toBe(expected);
    const filtered = { accountId: "acme", format, filter: { memberId: "bo" } };
    expect((await grpcExport(filtered)).text).toBe(await directExport(filtered));
  });

  it("a missing format is INVALID_ARGUMENT naming it, on both edges", async () => {
    const err = await grpcExport({ accountId: "acme" }).then(
      () => undefined,
      (e: unknown) => e as ServiceError,
    );
    expect(err?.code).toBe(status.INVALID_ARGUMENT);
    expect(statusDetails(err!).errorInfo?.metadata).toEqual({ field: "format" });
    const c = await connectExport({ accountId: "acme" }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(c?.code).toBe(Code.InvalidArgument);
    expect(c?.rawMessage).toMatch(/^format: /);
  });
});
