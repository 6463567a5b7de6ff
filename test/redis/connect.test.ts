import { once } from "node:events";
import { Cluster, Redis } from "ioredis";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { createRedisClient, reconnectDelayMs, waitForReady, type RedisClient } from "../../src/redis/connect.js";
import { findFreePort, startRedisServer } from "../../src/redis/redis-process.js";
import { startTestCluster, startTestRedis, uniquePrefix } from "../support/redis.js";

const cleanups: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

function track<T extends RedisClient>(client: T): T {
  cleanups.push(() => client.disconnect());
  return client;
}

function recordingLogger() {
  const lines: Array<{ level: number; msg: string; err?: { message: string } }> = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { logger, lines };
}

describe("createRedisClient (standalone)", () => {
  it("connects with fail-fast options", async () => {
    const redis = await startTestRedis();
    cleanups.push(() => redis.stop());
    const client = track(createRedisClient({ url: redis.url }));
    expect(client).toBeInstanceOf(Redis);
    await waitForReady(client, 2000);
    expect(client.status).toBe("ready");

    const prefix = uniquePrefix();
    await client.set(`${prefix}:k`, "v");
    expect(await client.get(`${prefix}:k`)).toBe("v");
    expect(await (client as Redis).client("GETNAME")).toBe("creditd");
    const options = (client as Redis).options;
    expect(options.maxRetriesPerRequest).toBe(2);
    expect(options.enableOfflineQueue).toBe(true);
    expect(options.lazyConnect).toBe(false);
  });

  it("queues commands issued while connecting", async () => {
    const redis = await startTestRedis();
    cleanups.push(() => redis.stop());
    const client = track(createRedisClient({ url: redis.url }));
    expect(await client.ping()).toBe("PONG"); // sent before 'ready'
  });

  it("fails commands fast while Redis is down, and recovers when it is back", async () => {
    const port = await findFreePort();
    let server = await startRedisServer({ port });
    cleanups.push(() => server.stop());
    const { logger, lines } = recordingLogger();
    const client = track(createRedisClient({ url: server.url }, { logger }));
    await waitForReady(client, 2000);

    await server.stop();
    const started = Date.now();
    await expect(client.get("x")).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(3000);
    expect(lines.some((l) => l.msg === "redis connection error")).toBe(true);

    server = await startRedisServer({ port });
    await waitForReady(client, 5000);
    expect(await client.ping()).toBe("PONG");
    expect(lines.some((l) => l.msg === "redis connection ready again")).toBe(true);
  });
});

describe("waitForReady", () => {
  it("rejects after the timeout with the last connection error", async () => {
    const port = await findFreePort(); // nothing listens there
    const client = track(createRedisClient({ url: `redis://127.0.0.1:${port}` }));
    await expect(waitForReady(client, 300)).rejects.toThrow(/not ready within 300 ms: .*ECONNREFUSED/);
  });

  it("rejects at once for a closed client", async () => {
    const redis = await startTestRedis();
    cleanups.push(() => redis.stop());
    const client = createRedisClient({ url: redis.url });
    await waitForReady(client, 2000);
    const ended = once(client, "end");
    await client.quit();
    await ended;
    await expect(waitForReady(client, 2000)).rejects.toThrow(/closed/);
  });
});

describe("reconnectDelayMs", () => {
  it("backs off exponentially up to the cap", () => {
    expect(reconnectDelayMs(1)).toBeLessThanOrEqual(50);
    expect(reconnectDelayMs(1)).toBeGreaterThanOrEqual(40);
    expect(reconnectDelayMs(4)).toBeLessThanOrEqual(400);
    for (const attempt of [10, 100, 10_000]) {
      const delay = reconnectDelayMs(attempt, 2000);
      expect(delay).toBeLessThanOrEqual(2000);
      expect(delay).toBeGreaterThanOrEqual(1600);
    }
  });
});

describe("createRedisClient (cluster)", () => {
  it("connects to a Cluster and routes commands", async () => {
    const cluster = await startTestCluster();
    cleanups.push(() => cluster.stop());
    const client = track(createRedisClient({ clusterNodes: cluster.nodes }));
    expect(client).toBeInstanceOf(Cluster);
    await waitForReady(client, 5000);
    const prefix = uniquePrefix();
    await client.set(`{${prefix}}:a`, "1");
    expect(await client.get(`{${prefix}}:a`)).toBe("1");
  });
});
