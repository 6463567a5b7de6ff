import { createHash } from "node:crypto";
import { readdirSync } from "node:fs";
import { credentials, Client } from "@grpc/grpc-js";
import type { Redis } from "ioredis";
import { service as healthService } from "grpc-health-check";
import { pino } from "pino";
import { afterAll, expect, it } from "vitest";
import { startApp } from "../src/app.js";
import { loadScript } from "../src/ledger/script-loader.js";
import { createRedisClient, waitForReady } from "../src/redis/connect.js";
import { type RedisServer, startRedisServer } from "../src/redis/redis-process.js";
import { uniquePrefix } from "./support/redis.js";

const cleanups: Array<() => Promise<unknown> | void> = [];
afterAll(async () => {
  for (const f of cleanups.reverse()) await f();
});

function healthOf(port: number): () => Promise<string> {
  const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
  cleanups.push(() => client.close());
  const check = healthService["Check"];
  if (!check) throw new Error("no Check method");
  return () =>
    new Promise((resolve, reject) => {
      client.makeUnaryRequest(
        check.path,
        check.requestSerialize,
        (buf: Buffer) => check.responseDeserialize(buf) as { status: string },
        { service: "creditd.v1.CreditService" },
        (err, res) => (err ? reject(err) : resolve(res?.status ?? "?")),
      );
    });
}

async function eventually(f: () => Promise<string>, want: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  let last = "";
  while (Date.now() < deadline) {
    last = await f();
    if (last === want) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`still ${last}, wanted ${want}`);
}

it("health is SERVING only while Redis answers, and again once it is back with the scripts loaded", async () => {
  let server: RedisServer = await startRedisServer({});
  cleanups.push(() => server.stop());
  const redis = createRedisClient({ url: server.url }, { maxReconnectDelayMs: 100 });
  cleanups.push(() => redis.disconnect());
  await waitForReady(redis, 5000);
  const app = await startApp({
    redis,
    logger: pino({ level: "silent" }),
    config: {
      grpcAddr: "127.0.0.1:0", httpAddr: "127.0.0.1:0", keyPrefix: uniquePrefix(), holdTtlDefaultSeconds: 60,
      holdTtlMaxSeconds: 600, idempotencyTtlSeconds: 3600, ledgerMaxEntries: 0, sweepIntervalSeconds: 0,
      shutdownTimeoutSeconds: 1, catalog: undefined, maxPromptBytes: 1 << 20, countInlineMaxBytes: 16384,
      countWorkers: 1, countCacheEntries: 100,
    },
  });
  cleanups.push(() => app.stop());
  const health = healthOf(app.grpcPort);
  expect(await health()).toBe("SERVING");

  const port = server.port;
  await server.stop();
  await eventually(health, "NOT_SERVING");

  // A new, empty Redis on the same port: no scripts until creditd loads them again.
  server = await startRedisServer({ port });
  await eventually(health, "SERVING");
  const libraries = JSON.stringify(await (redis as Redis).call("FUNCTION", "LIST", "LIBRARYNAME", app.ledger.libraryName));
  expect(libraries).toContain(app.ledger.libraryName);
  const loaded = await (redis as Redis).script("EXISTS", ...webhookScriptShas());
  expect(loaded).toEqual(webhookScriptShas().map(() => 1));
  const granted = await app.ledger.grant({ accountId: "acme", grantId: "g", amountMicros: 5, kind: "topup", priority: 0, expiresAtMs: 0 });
  expect(granted.status).toBe("granted");
});

/** The webhook dispatcher's scripts (EVALSHA: they are off the hot path); the ledger's are one Functions library. */
function webhookScriptShas(): string[] {
  const dir = new URL("../src/ledger/lua/", import.meta.url);
  const names = ["dead-letter-2", "webhook-consumers-1"];
  return names.map((name) => createHash("sha1").update(loadScript(dir, name)).digest("hex"));
}
