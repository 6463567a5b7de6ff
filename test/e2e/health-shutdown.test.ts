// grpc.health.v1 on the real process, health following Redis, and the graceful stop on SIGTERM:
// calls in flight when the signal arrives complete, then the process exits 0.
import { status as GrpcStatus } from "@grpc/grpc-js";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../src/gen/creditd/v1/admin_service_pb.js";
import { CreditService } from "../../src/gen/creditd/v1/credit_service_pb.js";
import { BucketKind } from "../../src/gen/creditd/v1/types_pb.js";
import { type RedisServer, findFreePort, startRedisServer } from "../../src/redis/redis-process.js";
import { type TestRedis, startTestRedis } from "../support/redis.js";
import { ensureBuilt, startServer, waitFor } from "../support/server-process.js";
import { CREDIT, grpcClient, healthCheck, healthClient, okJson, serviceError, uniquePrefix, unary } from "./clients.js";

describe("e2e: health and graceful shutdown", () => {
  // Build dist/ here, not inside a test: a build takes longer than a test's timeout.
  beforeAll(ensureBuilt, 180_000);

  let redis: TestRedis;
  let admin: Redis;

  beforeAll(async () => {
    redis = await startTestRedis();
    admin = new Redis(redis.url, { lazyConnect: false, maxRetriesPerRequest: 1 });
  }, 180_000);

  afterAll(async () => {
    admin?.disconnect();
    await redis?.stop();
  });

  it("is SERVING for the server and both services while running; unknown services are NOT_FOUND", async () => {
    const server = await startServer({ env: { CREDITD_REDIS_URL: redis.url, CREDITD_KEY_PREFIX: uniquePrefix("health") } });
    const health = healthClient(server.grpcAddr);
    try {
      expect(await healthCheck(health, "")).toBe("SERVING");
      expect(await healthCheck(health, "creditd.v1.CreditService")).toBe("SERVING");
      expect(await healthCheck(health, "creditd.v1.AdminService")).toBe("SERVING");
      const err = await serviceError(healthCheck(health, "creditd.v1.Nope"));
      expect(err.code).toBe(GrpcStatus.NOT_FOUND);
    } finally {
      health.close();
      const exit = await server.stop();
      expect(exit.code, exit.stdout + exit.stderr).toBe(0);
    }
  }, 20_000);

  it("on SIGTERM finishes the calls in flight (gRPC and HTTP), then exits 0 within the shutdown timeout", async () => {
    const prefix = uniquePrefix("drain");
    const server = await startServer({
      env: {
        CREDITD_REDIS_URL: redis.url,
        CREDITD_KEY_PREFIX: prefix,
        CREDITD_SHUTDOWN_TIMEOUT_SECONDS: "5",
        // No background sweeps: the only Redis commands are the test's calls.
        CREDITD_SWEEP_INTERVAL_SECONDS: "0",
      },
    });
    const credit = grpcClient(CreditService, server.grpcAddr);
    const adminClient = grpcClient(AdminService, server.grpcAddr);
    try {
      await unary(adminClient, AdminService.method.grant, {
        accountId: "acme",
        grantId: "g1",
        amountMicros: 100n * CREDIT,
        kind: BucketKind.TOPUP,
      });

      // Hold every write in Redis for a while, so calls started now are still running when SIGTERM arrives.
      const pauseMs = 2000;
      await admin.call("CLIENT", "PAUSE", String(pauseMs), "WRITE");
      const pausedAt = Date.now();
      const grpcCall = unary(
        credit,
        CreditService.method.reserve,
        { accountId: "acme", requestId: "in-flight-grpc", cost: { case: "amountMicros", value: 10n * CREDIT } },
        { deadlineMs: 10_000 },
      );
      grpcCall.catch(() => {});
      // The gRPC call has reached Redis: creditd's connection is blocked by the pause.
      await waitFor("the gRPC call to block in Redis", async () => (await creditdConnections(admin)).some((c) => c.blocked));
      const httpCall = okJson(server.httpUrl, "creditd.v1.CreditService/Reserve", {
        accountId: "acme",
        requestId: "in-flight-http",
        amountMicros: "20000000",
      });
      httpCall.catch(() => {});
      // The HTTP call's first command is queued behind the blocked one on the same connection.
      await waitFor("the HTTP call to reach Redis", async () =>
        (await creditdConnections(admin)).some((c) => c.blocked && c.pendingBytes > 0),
      );
      expect(Date.now() - pausedAt, "both calls must be in flight well before the pause ends").toBeLessThan(pauseMs - 300);

      const signalledAt = Date.now();
      server.kill("SIGTERM");

      const [grpcRes, httpRes] = await Promise.all([grpcCall, httpCall]);
      expect(grpcRes).toMatchObject({ reservationId: "acme:in-flight-grpc", heldMicros: 10n * CREDIT });
      expect(httpRes).toMatchObject({ reservationId: "acme:in-flight-http", heldMicros: "20000000" });
      // They were answered after the signal: the process drained them rather than finishing before it.
      expect(Date.now() - pausedAt).toBeGreaterThanOrEqual(pauseMs - 100);

      const exit = await server.stop();
      const tookMs = Date.now() - signalledAt;
      expect(exit.code, exit.stdout + exit.stderr).toBe(0);
      expect(exit.signal).toBeNull();
      expect(tookMs).toBeLessThan(5000);
      const messages = server.logs().map((l) => l.msg);
      expect(messages).toContain("shutting down: NOT_SERVING, finishing in-flight calls");
      expect(messages).toContain("stopped");
      expect(messages).not.toContain("grpc calls still running at shutdown deadline; cancelling them");

      // Both holds were really made.
      expect(await admin.hget(`${prefix}:{acme}:acct`, "held")).toBe(String(30n * CREDIT));
    } finally {
      credit.close();
      adminClient.close();
      await server.stop();
    }
  }, 20_000);

  it("exits within the shutdown timeout even when Redis stops answering", async () => {
    const server = await startServer({
      env: {
        CREDITD_REDIS_URL: redis.url,
        CREDITD_KEY_PREFIX: uniquePrefix("stuck"),
        CREDITD_SHUTDOWN_TIMEOUT_SECONDS: "1",
        CREDITD_SWEEP_INTERVAL_SECONDS: "0",
      },
    });
    try {
      await admin.call("CLIENT", "PAUSE", "8000", "WRITE");
      const stuck = okJson(server.httpUrl, "creditd.v1.CreditService/Reserve", {
        accountId: "acme",
        requestId: "stuck",
        amountMicros: "1000000",
      });
      stuck.catch(() => {});
      await waitFor("the call to block in Redis", async () => (await creditdConnections(admin)).some((c) => c.blocked));
      const signalledAt = Date.now();
      const exit = await server.stop();
      // One timeout for the servers to drain, one for Redis to close: well before the pause ends.
      expect(Date.now() - signalledAt).toBeLessThan(4000);
      expect(exit.code, exit.stdout + exit.stderr).toBe(0);
    } finally {
      await admin.call("CLIENT", "UNPAUSE");
      await server.stop();
    }
  }, 20_000);

  it("follows Redis: NOT_SERVING while it is down, SERVING again once it is back", async () => {
    const port = await findFreePort();
    let own: RedisServer | undefined = await startRedisServer({ port });
    const server = await startServer({ env: { CREDITD_REDIS_URL: own.url, CREDITD_KEY_PREFIX: uniquePrefix("follow") } });
    const health = healthClient(server.grpcAddr);
    try {
      expect(await healthCheck(health)).toBe("SERVING");
      await own.stop();
      own = undefined;
      await waitFor("NOT_SERVING after Redis stopped", async () => (await healthCheck(health)) === "NOT_SERVING");
      own = await startRedisServer({ port });
      await waitFor("SERVING after Redis is back", async () => (await healthCheck(health)) === "SERVING", 8000);
    } finally {
      health.close();
      const exit = await server.stop();
      await own?.stop();
      expect(exit.code, exit.stdout + exit.stderr).toBe(0);
    }
  }, 20_000);
});

interface Connection {
  blocked: boolean;
  /** Bytes received but not yet processed (commands queued behind a blocked one). */
  pendingBytes: number;
}

/** creditd's connections to Redis (CLIENT SETNAME creditd), from CLIENT LIST. */
async function creditdConnections(redis: Redis): Promise<Connection[]> {
  const list = (await redis.call("CLIENT", "LIST")) as string;
  return list
    .split("\n")
    .filter((line) => / name=creditd /.test(line))
    .map((line) => {
      const fields = new Map(line.trim().split(" ").map((kv) => kv.split("=", 2) as [string, string]));
      return { blocked: (fields.get("flags") ?? "").includes("b"), pendingBytes: Number(fields.get("qbuf") ?? 0) };
    });
}
