// Test harness: a real redis-server per test file (never a mock) and a fresh key prefix per test.

import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { afterAll, beforeAll } from "vitest";
import { redisCommand } from "../../src/redis/probe.js";
import { startRedisServer } from "../../src/redis/redis-process.js";

export interface TestRedis {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  stop(): Promise<void>;
}

/** A throw-away redis-server on a free port, no persistence. Call stop() in afterAll. */
export async function startTestRedis(): Promise<TestRedis> {
  const server = await startRedisServer({});
  return { url: server.url, host: server.host, port: server.port, stop: () => server.stop() };
}

export interface TestCluster {
  readonly nodes: Array<{ host: string; port: number }>;
  stop(): Promise<void>;
}

/**
 * A one-node Redis Cluster owning all 16384 slots (about 2 s to start: Redis holds a fresh master
 * unwritable for 2 s, so share one per test file): enough to check that keys of one operation share a
 * hash slot (CROSSSLOT errors) and that the Cluster client path works. Call stop() in afterAll.
 */
export async function startTestCluster(): Promise<TestCluster> {
  // A lone node does not know its own address (CLUSTER SLOTS would answer ""), so announce it.
  const server = await startRedisServer({
    bind: "127.0.0.1",
    extraArgs: ["--cluster-enabled", "yes", "--cluster-announce-ip", "127.0.0.1"],
  });
  try {
    const reply = await redisCommand(server.host, server.port, ["CLUSTER", "ADDSLOTSRANGE", "0", "16383"], 2000);
    if (reply !== "OK") throw new Error(`CLUSTER ADDSLOTSRANGE failed: ${JSON.stringify(reply)}`);
    for (let i = 0; ; i++) {
      const info = await redisCommand(server.host, server.port, ["CLUSTER", "INFO"], 2000);
      if (typeof info === "string" && info.includes("cluster_state:ok")) break;
      if (i > 200) throw new Error("test cluster did not reach cluster_state:ok");
      await sleep(10);
    }
  } catch (err) {
    await server.stop();
    throw err;
  }
  return { nodes: [{ host: server.host, port: server.port }], stop: () => server.stop() };
}

// pid + random run id: unique across files, forked or threaded workers, and repeated runs on one Redis.
const runId = `t${process.pid.toString(36)}${randomBytes(3).toString("hex")}`;
let counter = 0;

/** A key prefix no other test uses ([A-Za-z0-9_-], at most 32 characters). */
export function uniquePrefix(): string {
  counter += 1;
  return `${runId}x${counter}`;
}

/**
 * One redis-server for the whole test file, with a client: `const r = useTestRedis()` at the top of the file,
 * then `r.redis` and `r.server` inside tests.
 */
export function useTestRedis(): { readonly redis: Redis; readonly server: TestRedis } {
  let server: TestRedis | undefined;
  let redis: Redis | undefined;
  beforeAll(async () => {
    server = await startTestRedis();
    redis = new Redis(server.url);
  });
  afterAll(async () => {
    redis?.disconnect();
    await server?.stop();
  });
  return {
    get redis(): Redis {
      if (!redis) throw new Error("useTestRedis: used outside a test");
      return redis;
    },
    get server(): TestRedis {
      if (!server) throw new Error("useTestRedis: used outside a test");
      return server;
    },
  };
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function withClient<T>(url: string, f: (client: Redis) => Promise<T>): Promise<T> {
  const client = new Redis(url, { maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    return await f(client);
  } finally {
    client.disconnect();
  }
}
