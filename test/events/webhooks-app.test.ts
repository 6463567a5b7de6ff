// The app starts the webhook dispatcher when a URL is configured, and stops it with the rest.
import { pino } from "pino";
import { afterAll, expect, it } from "vitest";
import { type AppConfig, startApp } from "../../src/app.js";
import { webhooksSinceKey } from "../../src/events/webhooks.js";
import { createRedisClient, waitForReady } from "../../src/redis/connect.js";
import { type RedisServer, startRedisServer } from "../../src/redis/redis-process.js";
import { uniquePrefix } from "../support/redis.js";
import { readmeVerifier, startReceiver, until } from "./webhooks-support.js";

const cleanups: Array<() => Promise<unknown> | void> = [];
afterAll(async () => {
  for (const f of cleanups.reverse()) await f();
});

function config(over: Partial<AppConfig>): AppConfig {
  return {
    grpcAddr: "127.0.0.1:0", httpAddr: "127.0.0.1:0", keyPrefix: uniquePrefix(), holdTtlDefaultSeconds: 60,
    holdTtlMaxSeconds: 600, idempotencyTtlSeconds: 3600, ledgerMaxEntries: 0, sweepIntervalSeconds: 0,
    shutdownTimeoutSeconds: 1, catalog: undefined, maxPromptBytes: 1 << 20, countInlineMaxBytes: 16384,
    countWorkers: 1, countCacheEntries: 100,
    ...over,
  };
}

it("delivers the events of the app's ledger when a URL is set, and nothing is started without one", async () => {
  const server: RedisServer = await startRedisServer({});
  cleanups.push(() => server.stop());
  const redis = createRedisClient({ url: server.url });
  cleanups.push(() => redis.disconnect());
  await waitForReady(redis, 5000);
  const rc = await startReceiver();
  cleanups.push(() => rc.close());
  const verify = await readmeVerifier();
  const secret = "app-secret-0123456789abcdef";

  const off = config({});
  const plain = await startApp({ config: off, redis, logger: pino({ level: "silent" }) });
  await plain.ledger.grant({ accountId: "acme", grantId: "g0", amountMicros: 5, kind: "topup", priority: 0, expiresAtMs: 0 });
  await plain.stop();
  expect(await redis.exists(webhooksSinceKey(off.keyPrefix))).toBe(0);

  const app = await startApp({
    config: config({ webhookUrl: rc.url, webhookSecret: secret, webhookMaxAttempts: 3, webhookTimeoutMs: 1000, webhookBackoffMs: 50 }),
    redis,
    logger: pino({ level: "silent" }),
  });
  let stopped = false;
  cleanups.push(() => (stopped ? undefined : app.stop()));
  await app.ledger.grant({ accountId: "acme", grantId: "g1", amountMicros: 7, kind: "topup", priority: 0, expiresAtMs: 0 });
  await until(() => rc.received.length >= 1, 10_000, "the delivery");
  const got = rc.received[0]!;
  expect(got.json).toMatchObject({ type: "grant", accountId: "acme", grant: { grantId: "g1", amountMicros: "7" } });
  expect(verify(got.body, got.headers["creditd-signature"], secret)).toBe(true);
  await app.stop();
  stopped = true;
  expect(rc.received).toHaveLength(1);
});
