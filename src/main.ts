import { type Logger, pino } from "pino";
import { startApp } from "./app.js";
import { ConfigError, loadConfig, redactUrl } from "./config/settings.js";
import { type RedisClient, type RedisTarget, createRedisClient, waitForReady } from "./redis/connect.js";
import { type LocalRedis, ensureLocalRedis } from "./redis/local-redis.js";
import { RedisServerNotFoundError } from "./redis/redis-process.js";

/** `npm start`: read the configuration, find or start Redis, serve gRPC and JSON, stop cleanly on SIGTERM. */
async function main(): Promise<void> {
  let loaded;
  try {
    loaded = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`creditd: invalid configuration\n${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const { config, warnings } = loaded;
  // Asynchronous, batched logging: a log line never blocks an RPC, and lines leave in writes of at least
  // LOG_BATCH_BYTES (one write(2) per RPC cost a tenth of a Reserve's CPU, bench/README.md), or after at most
  // LOG_FLUSH_MS when traffic is low. Every way out of the process below goes through exitFlushed().
  const destination = pino.destination({ sync: false, minLength: LOG_BATCH_BYTES, periodicFlush: LOG_FLUSH_MS });
  const logger = pino({ level: config.logLevel, base: { service: "creditd" } }, destination);
  const exit = (code: number): Promise<never> => exitFlushed(logger, destination, code);
  // A crash still leaves every line logged before it, and says why it happened.
  process.on("uncaughtException", (err, origin) => {
    try {
      logger.fatal({ err, origin }, "fatal error, exiting");
    } finally {
      void exit(1);
    }
  });
  for (const warning of warnings) logger.warn(warning);

  let local: LocalRedis | undefined;
  let target: RedisTarget;
  if (config.redisUrl) {
    target = { url: config.redisUrl };
  } else if (config.redisClusterNodes) {
    target = { clusterNodes: config.redisClusterNodes };
  } else {
    try {
      local = await ensureLocalRedis(config.dataDir, logger);
    } catch (err) {
      const hint =
        err instanceof RedisServerNotFoundError
          ? err.message
          : `could not start a local redis-server in ${config.dataDir}: ${(err as Error).message}`;
      process.stderr.write(
        `creditd: ${hint}\nSet CREDITD_REDIS_URL (or CREDITD_REDIS_CLUSTER_NODES) to use an existing Redis.\n`,
      );
      return exit(1);
    }
    target = { url: local.url };
  }

  let redis: RedisClient | undefined;
  try {
    redis = createRedisClient(target, { logger });
    await waitForReady(redis, 15_000);
    const app = await startApp({ config, redis, logger });
    logger.info(
      {
        grpc: config.grpcAddr.replace(/:\d+$/, `:${app.grpcPort}`),
        http: config.httpAddr.replace(/:\d+$/, `:${app.httpPort}`),
        redis: "url" in target ? redactUrl(target.url) : target.clusterNodes.map((n) => `${n.host}:${n.port}`),
        localRedis: local !== undefined,
      },
      "creditd serving",
    );

    // SIGHUP reloads the catalog (a bad one is refused and logged; the old one keeps serving).
    app.catalogs.installSighupHandler();

    let stopping = false;
    const shutdown = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, "shutting down: NOT_SERVING, finishing in-flight calls");
      const activeRedis = redis;
      void app
        .stop()
        .then(() => (activeRedis ? closeRedis(activeRedis, config.shutdownTimeoutSeconds * 1000) : undefined))
        .then(() => local?.stop())
        .then(() => {
          logger.info("stopped");
          return exit(0);
        })
        .catch((err: unknown) => {
          logger.error({ err }, "unclean shutdown");
          return exit(1);
        });
    };
    process.on("SIGTERM", () => shutdown("SIGTERM"));
    process.on("SIGINT", () => shutdown("SIGINT"));
  } catch (err) {
    logger.error({ err }, "creditd could not start");
    redis?.disconnect();
    await local?.stop();
    return exit(1);
  }
}

/** Log lines are written in batches of at least this many bytes... */
const LOG_BATCH_BYTES = 4096;
/** ...or after this long, whichever comes first. */
const LOG_FLUSH_MS = 1000;
/** How long an exit waits for the log writes in progress before writing the rest synchronously. */
const LOG_DRAIN_MS = 2000;

/**
 * Exits once every log line is written. The asynchronous flush lets a write already handed to libuv finish first
 * (a synchronous flush alone could write later lines before it, or lose it when the process exits under it); the
 * synchronous flush then writes whatever is left (all of it when the flush timed out: a reader that stopped reading).
 */
async function exitFlushed(logger: Logger, destination: { flushSync(): void }, code: number): Promise<never> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, LOG_DRAIN_MS);
    try {
      logger.flush(() => {
        clearTimeout(timer);
        resolve();
      });
    } catch {
      clearTimeout(timer);
      resolve();
    }
  });
  try {
    destination.flushSync();
  } catch {
    // Nothing more can be done for the logs; the exit code still tells.
  }
  process.exit(code);
}

/**
 * QUIT waits behind any command still queued; a Redis that stopped answering would hold the exit forever, so the
 * wait is bounded like the rest of the shutdown, then the connection is dropped.
 */
async function closeRedis(redis: RedisClient, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeoutMs);
  });
  await Promise.race([redis.quit().catch(() => undefined), timedOut]);
  clearTimeout(timer);
  redis.disconnect();
}

void main();
