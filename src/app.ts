import type { Logger } from "pino";
import type { Config } from "./config/settings.js";
import { AdminService } from "./gen/creditd/v1/admin_service_pb.js";
import { CreditService } from "./gen/creditd/v1/credit_service_pb.js";
import { EventService } from "./gen/creditd/v1/event_service_pb.js";
import { EventHub } from "./events/hub.js";
import { WebhookDispatcher, loadWebhookScripts } from "./events/webhooks.js";
import { UsageService } from "./gen/creditd/v1/usage_service_pb.js";
import type { Clock } from "./ledger/clock.js";
import { Ledger } from "./ledger/ledger.js";
import { Sweeper } from "./ledger/sweeper.js";
import type { RedisClient } from "./redis/connect.js";
import { type GrpcServerHandle, startGrpcServer } from "./rpc/grpc-server.js";
import { type HttpServerHandle, startHttpServer } from "./rpc/http-server.js";
import { instrument } from "./rpc/instrument.js";
import type { ServiceBinding } from "./rpc/types.js";
import { Meter } from "./metering/index.js";
import { CatalogRegistry } from "./pricing/registry.js";
import { CatalogStore } from "./pricing/store.js";
import { adminService } from "./service/admin-service.js";
import { creditService } from "./service/credit-service.js";
import { eventService } from "./service/event-service.js";
import { Pricer } from "./service/pricing.js";
import { usageService } from "./service/usage-service.js";

export type AppConfig = Pick<
  Config,
  | "grpcAddr"
  | "httpAddr"
  | "keyPrefix"
  | "holdTtlDefaultSeconds"
  | "holdTtlMaxSeconds"
  | "idempotencyTtlSeconds"
  | "ledgerMaxEntries"
  | "sweepIntervalSeconds"
  | "shutdownTimeoutSeconds"
  | "catalog"
  | "maxPromptBytes"
  | "countInlineMaxBytes"
  | "countWorkers"
  | "countCacheEntries"
> &
  // Optional so embedders (and tests) that predate them keep their defaults: keep all, 400 days.
  Partial<Pick<Config, "ledgerRetentionDays" | "usageSummaryDays">> &
  // Webhooks are off unless webhookUrl and webhookSecret are given.
  Partial<
    Pick<Config, "webhookUrl" | "webhookSecret" | "webhookMaxAttempts" | "webhookTimeoutMs" | "webhookBackoffMs">
  >;

export interface App {
  ledger: Ledger;
  catalogs: CatalogStore;
  meter: Meter;
  /** Live events (WatchEvents); one subscription for the process while anyone watches. */
  events: EventHub;
  grpcPort: number;
  httpPort: number;
  /** NOT_SERVING, then in-flight calls finish (bounded by shutdownTimeoutSeconds), then the servers close. */
  stop(): Promise<void>;
}

/** The service bindings both edges serve: one implementation per RPC, instrumented once. */
export function bindings(
  ledger: Ledger,
  pricer: Pricer,
  config: AppConfig,
  logger: Logger,
  events: EventHub,
): ServiceBinding[] {
  return [
    instrument(
      {
        service: CreditService,
        handlers: creditService({
          ledger,
          pricer,
          holdTtlDefaultSeconds: config.holdTtlDefaultSeconds,
          holdTtlMaxSeconds: config.holdTtlMaxSeconds,
        }),
      },
      logger,
    ),
    instrument({ service: AdminService, handlers: adminService({ ledger, catalog: () => pricer.catalog }) }, logger),
    instrument({ service: EventService, handlers: eventService({ hub: events }) }, logger),
    instrument({ service: UsageService, handlers: usageService({ ledger }) }, logger),
  ];
}

/**
 * Builds and starts creditd on a connected Redis client: scripts loaded, both edges listening, the sweeper running.
 * Health is SERVING only once the scripts are loaded, and follows Redis's connection after that.
 */
export async function startApp(opts: {
  config: AppConfig;
  redis: RedisClient;
  logger: Logger;
  clock?: Clock;
}): Promise<App> {
  const { config, redis, logger } = opts;
  const ledger = new Ledger(redis, {
    keyPrefix: config.keyPrefix,
    retentionMs: config.idempotencyTtlSeconds * 1000,
    ledgerMaxEntries: config.ledgerMaxEntries,
    ledgerRetentionMs: (config.ledgerRetentionDays ?? 0) * 86_400_000,
    ...(config.usageSummaryDays !== undefined ? { usageSummaryDays: config.usageSummaryDays } : {}),
    ...(opts.clock ? { clock: opts.clock } : {}),
  });
  await ledger.loadScripts();
  await loadWebhookScripts(redis);

  // A bad catalog at start stops the start (CatalogError names the bad entries); later reloads keep the old one.
  const catalogs = new CatalogStore({ ...(config.catalog ? { path: config.catalog } : {}), logger });
  const meter = new Meter({
    maxInputBytes: config.maxPromptBytes,
    inlineMaxBytes: config.countInlineMaxBytes,
    cacheEntries: config.countCacheEntries,
    ...(config.countWorkers > 0 ? { workers: config.countWorkers } : {}),
  });
  // A hold priced with a catalog version stays settleable for as long as the hold and its record can live.
  const registry = new CatalogRegistry(
    redis,
    config.keyPrefix,
    (config.holdTtlMaxSeconds + config.idempotencyTtlSeconds) * 1000,
  );
  const pricer = new Pricer(catalogs, meter, registry);
  await registry.publish(catalogs.current);
  const stopWatching = config.catalog ? catalogs.watch() : () => {};

  const events = new EventHub(redis, { keys: ledger.keys, logger });
  const served = bindings(ledger, pricer, config, logger, events);
  let grpc: GrpcServerHandle | undefined;
  let http: HttpServerHandle | undefined;
  try {
    grpc = await startGrpcServer({ addr: config.grpcAddr, bindings: served, logger, serving: false });
    http = await startHttpServer({ addr: config.httpAddr, bindings: served, logger });
  } catch (err) {
    await grpc?.shutdown(0);
    throw err;
  }
  const health = grpc.health;

  // Redis going away makes the sidecar NOT_SERVING until it is back and the scripts are loaded again.
  let stopping = false;
  const onDown = () => health.setServing(false);
  const onReady = () => {
    Promise.all([ledger.loadScripts(), loadWebhookScripts(redis)])
      .then(() => {
        if (!stopping) health.setServing(true);
      })
      .catch((err: unknown) => logger.warn({ err }, "loading scripts after reconnect failed"));
  };
  redis.on("close", onDown);
  redis.on("ready", onReady);
  health.setServing(true);

  const sweeper = new Sweeper(ledger, {
    intervalMs: config.sweepIntervalSeconds * 1000,
    logger,
    ...(opts.clock ? { nowMs: () => opts.clock?.nowMs() ?? Date.now() } : {}),
  });
  sweeper.start();

  const webhooks =
    config.webhookUrl && config.webhookSecret
      ? new WebhookDispatcher(redis, {
          url: config.webhookUrl,
          secret: config.webhookSecret,
          keyPrefix: config.keyPrefix,
          maxAttempts: config.webhookMaxAttempts ?? 8,
          timeoutMs: config.webhookTimeoutMs ?? 5000,
          backoffMs: config.webhookBackoffMs ?? 1000,
          // Dead letters are capped like the events stream they come from.
          deadLetterMaxLen: config.ledgerMaxEntries,
          logger,
        })
      : undefined;
  await webhooks?.start();

  const grpcServer = grpc;
  const httpServer = http;
  return {
    ledger,
    catalogs,
    meter,
    events,
    grpcPort: grpcServer.port,
    httpPort: httpServer.port,
    async stop() {
      stopping = true;
      health.setServing(false);
      redis.off("close", onDown);
      redis.off("ready", onReady);
      const timeoutMs = config.shutdownTimeoutSeconds * 1000;
      // Both edges end their open streams (WatchEvents) as they begin, so only unary calls are waited for.
      await Promise.all([
        sweeper.stop(),
        webhooks?.stop(timeoutMs),
        grpcServer.shutdown(timeoutMs),
        httpServer.close(timeoutMs),
      ]);
      await events.close();
      stopWatching();
      catalogs.close();
      await meter.close();
    },
  };
}
