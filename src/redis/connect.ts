// Redis clients with production options: fail RPCs fast while Redis is down, keep reconnecting
// in the background, and report connection trouble through the logger instead of as unhandled
// 'error' events.

import { Cluster, Redis, type ClusterOptions, type RedisOptions } from "ioredis";
import type { Logger } from "pino";

export type RedisTarget =
  | { url: string }
  | { clusterNodes: ReadonlyArray<{ host: string; port: number }> };

export type RedisClient = Redis | Cluster;

export interface RedisClientOptions {
  /** CLIENT SETNAME, visible in CLIENT LIST; default "creditd". */
  connectionName?: string;
  /** Per-connection-attempt timeout; default 5000 ms. */
  connectTimeoutMs?: number;
  /**
   * How many reconnections a queued command survives before it fails with MaxRetriesPerRequestError;
   * default 2, so an RPC fails within a few seconds when Redis is down rather than hang.
   */
  maxRetriesPerRequest?: number;
  /** Fail a command with no reply after this long; default none (Lua scripts can legitimately take a while). */
  commandTimeoutMs?: number;
  /** Longest pause between reconnection attempts; default 2000 ms. */
  maxReconnectDelayMs?: number;
  /** Connection errors and reconnections are logged here (each distinct error once until the next 'ready'). */
  logger?: Pick<Logger, "info" | "warn">;
  /** Merged last into the ioredis options, for anything not covered above. */
  redisOptions?: RedisOptions;
  /** Merged last into the Cluster options (cluster targets only). */
  clusterOptions?: ClusterOptions;
}

/** Exponential backoff from 50 ms, capped, with jitter so many sidecars do not reconnect in step. */
export function reconnectDelayMs(attempt: number, maxDelayMs = 2000): number {
  const base = Math.min(50 * 2 ** Math.min(attempt - 1, 16), maxDelayMs);
  return Math.round(base * (0.8 + Math.random() * 0.2));
}

export function createRedisClient(target: RedisTarget, opts: RedisClientOptions = {}): RedisClient {
  const maxDelayMs = opts.maxReconnectDelayMs ?? 2000;
  const common = {
    connectionName: opts.connectionName ?? "creditd",
    connectTimeout: opts.connectTimeoutMs ?? 5000,
    maxRetriesPerRequest: opts.maxRetriesPerRequest ?? 2,
    ...(opts.commandTimeoutMs === undefined ? {} : { commandTimeout: opts.commandTimeoutMs }),
    enableReadyCheck: true,
    lazyConnect: false,
  } satisfies RedisOptions;

  let client: RedisClient;
  if ("url" in target) {
    client = new Redis(target.url, {
      ...common,
      // Queue commands issued while (re)connecting; maxRetriesPerRequest bounds how long they wait.
      enableOfflineQueue: true,
      retryStrategy: (times) => reconnectDelayMs(times, maxDelayMs),
      ...opts.redisOptions,
    });
  } else {
    if (target.clusterNodes.length === 0) throw new Error("createRedisClient: clusterNodes is empty");
    client = new Cluster(
      target.clusterNodes.map((n) => ({ host: n.host, port: n.port })),
      {
        enableOfflineQueue: true,
        enableReadyCheck: true,
        lazyConnect: false,
        clusterRetryStrategy: (times) => reconnectDelayMs(times, maxDelayMs),
        // Node connections reconnect too, so a restarted node without slot changes comes back.
        clusterNodeRetryStrategy: (times) => reconnectDelayMs(times, maxDelayMs),
        slotsRefreshTimeout: 2000,
        redisOptions: { ...common, ...opts.redisOptions },
        ...opts.clusterOptions,
      },
    );
  }
  attachLogging(client, opts.logger);
  return client;
}

function attachLogging(client: RedisClient, logger: RedisClientOptions["logger"]): void {
  let lastError: string | undefined;
  let wasReady = false;
  // Without an 'error' listener ioredis prints "Unhandled error event" on every failed attempt.
  const onError = (err: Error): void => {
    if (err.message === lastError) return;
    lastError = err.message;
    logger?.warn({ err }, "redis connection error");
  };
  client.on("error", onError);
  if (client instanceof Cluster) client.on("node error", onError);
  client.on("ready", () => {
    if (wasReady || lastError !== undefined) logger?.info("redis connection ready again");
    wasReady = true;
    lastError = undefined;
  });
}

/** Resolves when the client is ready; rejects after timeoutMs (with the last connection error) or if it is closed. */
export function waitForReady(client: RedisClient, timeoutMs: number): Promise<void> {
  if (client.status === "ready") return Promise.resolve();
  if (client.status === "end") return Promise.reject(new Error("redis client is closed"));
  return new Promise((resolveReady, reject) => {
    let lastError: Error | undefined;
    const cleanup = (): void => {
      clearTimeout(timer);
      client.off("ready", onReady);
      client.off("error", onError);
      client.off("end", onEnd);
    };
    const onReady = (): void => {
      cleanup();
      resolveReady();
    };
    const onError = (err: Error): void => {
      lastError = err;
    };
    const onEnd = (): void => {
      cleanup();
      reject(new Error(`redis client closed before it was ready${lastError ? `: ${lastError.message}` : ""}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(
        new Error(`redis not ready within ${timeoutMs} ms${lastError ? `: ${lastError.message}` : ` (status ${client.status})`}`),
      );
    }, timeoutMs);
    client.on("ready", onReady);
    client.on("error", onError);
    client.on("end", onEnd);
  });
}
