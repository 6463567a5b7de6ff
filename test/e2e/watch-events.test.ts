// WatchEvents against the real built process: a gRPC watcher (grpc-js) and a Connect JSON watcher over HTTP/1.1
// (connect-node) see the events of real calls, reflection lists the service, and SIGTERM ends both streams at once
// with UNAVAILABLE while the process exits well within its shutdown timeout.
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../src/gen/creditd/v1/admin_service_pb.js";
import { CreditService } from "../../src/gen/creditd/v1/credit_service_pb.js";
import { type Event, EventService, type WatchEventsResponse } from "../../src/gen/creditd/v1/event_service_pb.js";
import { BucketKind } from "../../src/gen/creditd/v1/types_pb.js";
import { type TestRedis, startTestRedis } from "../support/redis.js";
import { ROOT, ensureBuilt, run, startServer } from "../support/server-process.js";
import { type TestStream, grpcStream, jsonStream } from "../support/watch.js";
import { CREDIT, grpcClient, okJson, uniquePrefix, unary } from "./clients.js";

const WATCH = EventService.method.watchEvents;

/** The next event that is not one of the sync grants (grant ids "sync-…"). */
async function nextReal(s: TestStream<WatchEventsResponse>): Promise<Event> {
  for (;;) {
    const e = (await s.next()).event!;
    if (!(e.detail.case === "grant" && e.detail.value.grantId.startsWith("sync-"))) return e;
  }
}

describe("e2e: WatchEvents", () => {
  beforeAll(ensureBuilt, 180_000);

  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startTestRedis();
  }, 30_000);
  afterAll(async () => {
    await redis?.stop();
  });

  it("streams real events over gRPC and Connect JSON, is listed by reflection, and ends at once on SIGTERM", async () => {
    const server = await startServer({
      env: {
        CREDITD_REDIS_URL: redis.url,
        CREDITD_KEY_PREFIX: uniquePrefix("watch"),
        CREDITD_SHUTDOWN_TIMEOUT_SECONDS: "20",
        CREDITD_SWEEP_INTERVAL_SECONDS: "0",
      },
    });
    const admin = grpcClient(AdminService, server.grpcAddr);
    const credit = grpcClient(CreditService, server.grpcAddr);
    try {
      // Reflection (what grpcurl and buf curl use) lists the service.
      const listed = await run(join(ROOT, "node_modules", ".bin", "buf"), ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "--list-methods", `http://${server.grpcAddr}`], {
        env: process.env,
      });
      expect(listed.stdout, listed.stderr).toContain("creditd.v1.EventService/WatchEvents");

      const overGrpc = grpcStream(server.grpcAddr, WATCH, { accountId: "acme" });
      const overJson = jsonStream(server.httpUrl, WATCH, { types: ["grant", "refund"] });

      // No way to see from outside when a watch has started: grant until both have seen one.
      for (let i = 0; overGrpc.received.length === 0 || overJson.received.length === 0; i++) {
        if (i > 100) throw new Error("the watchers saw no event within 10 s");
        await okJson(server.httpUrl, "creditd.v1.AdminService/Grant", {
          accountId: "acme",
          grantId: `sync-${i}`,
          amountMicros: String(CREDIT),
          kind: "BUCKET_KIND_TOPUP",
        });
        await new Promise((r) => setTimeout(r, 100));
      }

      await unary(admin, AdminService.method.grant, {
        accountId: "acme",
        grantId: "pack-1",
        amountMicros: 50n * CREDIT,
        kind: BucketKind.TOPUP,
      });
      await unary(admin, AdminService.method.grant, {
        accountId: "other",
        grantId: "pack-9",
        amountMicros: 2n * CREDIT,
        kind: BucketKind.TOPUP,
      });
      await unary(credit, CreditService.method.reserve, {
        accountId: "acme",
        requestId: "gen-1",
        cost: { case: "amountMicros", value: 8n * CREDIT },
      });
      await okJson(server.httpUrl, "creditd.v1.CreditService/Refund", { reservationId: "acme:gen-1", reason: "upstream 502" });

      // gRPC, one account: acme's grant, then its refund; nothing of "other".
      let e = await nextReal(overGrpc);
      expect(e).toMatchObject({ type: "grant", accountId: "acme", detail: { case: "grant", value: { grantId: "pack-1", kind: "topup", amountMicros: 50n * CREDIT } } });
      e = await nextReal(overGrpc);
      expect(e).toMatchObject({
        type: "refund",
        accountId: "acme",
        detail: { case: "refund", value: { requestId: "gen-1", amountMicros: 8n * CREDIT, from: "held", reason: "upstream 502" } },
      });
      // JSON, every account, grants and refunds: the same two and other's grant.
      const json: string[] = [];
      for (let i = 0; i < 3; i++) {
        const j = await nextReal(overJson);
        json.push(`${j.accountId} ${j.type} ${j.detail.case === "grant" ? j.detail.value.grantId : j.detail.case === "refund" ? j.detail.value.requestId : ""}`);
      }
      expect(json.sort()).toEqual(["acme grant pack-1", "acme refund gen-1", "other grant pack-9"]);
      expect(e.id).not.toBe("");
      expect(overJson.received.some((m) => m.event?.id === e.id)).toBe(true); // the same id on both edges

      // A bad filter is refused before anything is watched.
      const bad = jsonStream(server.httpUrl, WATCH, { types: ["grant", "nope"] });
      expect(await bad.ended()).toMatchObject({ code: Code.InvalidArgument });
      expect((await bad.ended()).message).toMatch(/^types\[1\]: must be one of threshold, depleted/);

      const sigterm = Date.now();
      server.kill("SIGTERM");
      for (const s of [overGrpc, overJson]) {
        expect(await s.ended(3000)).toMatchObject({ code: Code.Unavailable, message: "server shutting down" });
      }
      const exit = await server.stop();
      expect(exit.code, exit.stdout + exit.stderr).toBe(0);
      // Far within the 20 s shutdown timeout: open streams did not hold the graceful stop.
      expect(Date.now() - sigterm).toBeLessThan(5000);
      const lines = server.logs().filter((l) => l["rpc"] === "creditd.v1.EventService/WatchEvents");
      expect(lines.filter((l) => l["outcome"] === "unavailable")).toHaveLength(2);
      expect(lines.find((l) => l["account_id"] === "acme")).toMatchObject({ outcome: "unavailable" });
      expect(lines.find((l) => l["outcome"] === "invalid_argument")).toBeDefined();
    } finally {
      admin.close();
      credit.close();
      await server.stop();
    }
  }, 60_000);
});
