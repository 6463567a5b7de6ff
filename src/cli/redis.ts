// What the command-line tools (npm run audit, npm run export) share: finding the Redis `npm start` uses, connecting
// to it the way a tool should (a few attempts, then a clear message), and letting go of it.

import { type Config, ConfigError, loadConfig, redactUrl } from "../config/settings.js";
import { Ledger } from "../ledger/ledger.js";
import { type RedisClient, type RedisTarget, createRedisClient, waitForReady } from "../redis/connect.js";
import { findLocalRedis } from "../redis/local-redis.js";

const READY_TIMEOUT_MS = 10_000;
/** Reconnection attempts before a tool gives up on an unreachable Redis. */
const CONNECT_ATTEMPTS = 3;

/** The tool could not run (no Redis, bad configuration): exit 2 with this message. */
export class CannotRun extends Error {}

/** CREDITD_REDIS_URL, CREDITD_REDIS_CLUSTER_NODES, else the local Redis of a running `npm start`. */
export async function redisTarget(config: Config, purpose: string): Promise<{ target: RedisTarget; shown: string }> {
  if (config.redisUrl !== undefined) return { target: { url: config.redisUrl }, shown: redactUrl(config.redisUrl) };
  if (config.redisClusterNodes !== undefined) {
    return {
      target: { clusterNodes: config.redisClusterNodes },
      shown: config.redisClusterNodes.map((n) => `${n.host}:${n.port}`).join(","),
    };
  }
  const url = await findLocalRedis(config.dataDir);
  if (url === null) {
    throw new CannotRun(
      `no Redis ${purpose}: CREDITD_REDIS_URL and CREDITD_REDIS_CLUSTER_NODES are not set, and no running local Redis ` +
        `was found in ${config.dataDir} (no live local-redis.json).\n` +
        "Start creditd (npm start) so its local Redis is running, or set CREDITD_REDIS_URL " +
        `(or CREDITD_REDIS_CLUSTER_NODES) to the Redis ${purpose}.`,
    );
  }
  return { target: { url }, shown: `${url} (local Redis of ${config.dataDir})` };
}

/**
 * A ready client of the configured Redis; throws CannotRun when there is none or it cannot be reached.
 * `purpose` completes "no Redis …" ("to audit"). Hand the client to closeRedis() when done.
 */
export async function connectRedis(config: Config, opts: { connectionName: string; purpose: string }): Promise<RedisClient> {
  const { target, shown } = await redisTarget(config, opts.purpose);
  // A command-line tool gives up after a few attempts instead of reconnecting forever like the server.
  // No logger: the connection error surfaces once, through waitForReady's message.
  const giveUp = (times: number): number | null => (times > CONNECT_ATTEMPTS ? null : 200);
  const redis = createRedisClient(target, {
    connectionName: opts.connectionName,
    redisOptions: { retryStrategy: giveUp },
    clusterOptions: { clusterRetryStrategy: giveUp },
  });
  try {
    await waitForReady(redis, READY_TIMEOUT_MS);
  } catch (err) {
    await closeRedis(redis);
    throw new CannotRun(`cannot connect to Redis at ${shown}: ${(err as Error).message}`);
  }
  return redis;
}

export async function closeRedis(redis: RedisClient | undefined): Promise<void> {
  // Not on a client that gave up: ioredis's disconnect() would arm a 2 s timer and hold the exit.
  if (redis !== undefined && redis.status !== "end") {
    await redis.quit().catch(() => redis.disconnect());
  }
}

/** The ledger `npm start` would use on this configuration (the tools read; they never need its clock). */
export function ledgerOf(redis: RedisClient, config: Config): Ledger {
  return new Ledger(redis, {
    keyPrefix: config.keyPrefix,
    retentionMs: config.idempotencyTtlSeconds * 1000,
    ledgerMaxEntries: config.ledgerMaxEntries,
    ledgerRetentionMs: config.ledgerRetentionDays * 86_400_000,
    usageSummaryDays: config.usageSummaryDays,
  });
}

/** The configuration `npm start` would read, or null after writing "<tool>: invalid configuration" to stderr. */
export function loadToolConfig(tool: string): Config | null {
  try {
    return loadConfig().config;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${tool}: invalid configuration\n${err.message}\n`);
    return null;
  }
}
