// Webhooks on Redis Cluster (a one-node Cluster owning every slot): the subscriber, the per-master pass, the
// scripts and the claims all go through the Cluster client.
import { Cluster } from "ioredis";
import { afterAll, beforeAll, expect, it } from "vitest";
import { pino } from "pino";
import { slotTagOfEventsKey } from "../../src/events/event.js";
import { WebhookDispatcher, deadLetterKey, loadWebhookScripts } from "../../src/events/webhooks.js";
import { ManualClock } from "../../src/ledger/clock.js";
import { Ledger } from "../../src/ledger/ledger.js";
import { give, T0 } from "../support/ledger.js";
import { type TestCluster, startTestCluster, uniquePrefix } from "../support/redis.js";
import { readmeVerifier, startReceiver, until } from "./webhooks-support.js";

let cluster: TestCluster;
let client: Cluster;
beforeAll(async () => {
  cluster = await startTestCluster();
  client = new Cluster(cluster.nodes);
  await new Promise<void>((resolve, reject) => {
    client.once("ready", resolve);
    client.once("error", reject);
  });
});
afterAll(async () => {
  client?.disconnect();
  await cluster?.stop();
});

it("delivers events from many slots and dead-letters in the event's own slot", async () => {
  const prefix = uniquePrefix();
  const ledger = new Ledger(client, { keyPrefix: prefix, retentionMs: 86_400_000, ledgerMaxEntries: 0, clock: new ManualClock(T0) });
  await ledger.loadScripts();
  await loadWebhookScripts(client);
  const verify = await readmeVerifier();
  const secret = "cluster-secret-0123456789";
  const rc = await startReceiver((req) => (req.json["accountId"] === "refuse-me" ? 500 : 200));
  const d = new WebhookDispatcher(client, {
    url: rc.url,
    secret,
    keyPrefix: prefix,
    maxAttempts: 2,
    timeoutMs: 500,
    backoffMs: 20,
    leaseGraceMs: 200,
    passIntervalMs: 600_000,
    logger: pino({ level: "silent" }),
  });
  try {
    await d.start();
    const accounts = Array.from({ length: 8 }, (_, i) => `org-${i}`);
    await Promise.all([...accounts, "refuse-me"].map((a) => give(ledger, a, 1, "topup")));
    await until(() => new Set(rc.ids()).size >= 9, 10_000, "nine events");
    const dead = deadLetterKey(prefix, slotTagOfEventsKey(ledger.keys.account("refuse-me").events)!);
    await until(async () => (await client.xlen(dead)) === 1, 10_000, "the dead letter");
    expect(rc.received.every((got) => verify(got.body, got.headers["creditd-signature"], secret))).toBe(true);
    expect(rc.received.filter((got) => got.json["accountId"] === "refuse-me")).toHaveLength(2);
    expect(rc.received.filter((got) => got.json["accountId"] !== "refuse-me").map((got) => got.json["accountId"]).sort()).toEqual(
      accounts.sort(),
    );
    // An event the dispatcher was not told about (a lost publish): the pass over the node's streams finds it.
    const quiet = ledger.keys.account("quiet").events;
    const id = await client.xadd(quiet, "*", "type", "grant", "account", "quiet", "t", String(T0), "amt", "7");
    await d.passOnce();
    await until(() => rc.ids().includes(`${slotTagOfEventsKey(quiet)}-${id}`), 5000, "the unannounced event");
  } finally {
    await d.stop(500);
    await rc.close();
  }
});
