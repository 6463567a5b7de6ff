import { Cluster, Redis } from "ioredis";
import calculateSlot from "cluster-key-slot";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/ledger/clock.js";
import { KeySpace } from "../../src/ledger/keys.js";
import { Ledger } from "../../src/ledger/ledger.js";
import { Sweeper } from "../../src/ledger/sweeper.js";
import { C, MINUTE, T0, expectConsistent, give } from "../support/ledger.js";
import { type TestCluster, type TestRedis, startTestCluster, startTestRedis, uniquePrefix } from "../support/redis.js";

const quiet = { warn: () => {}, debug: () => {} };

/** Holds on accounts nobody touches again: only the sweeper can release them. */
async function abandonedHolds(client: Redis | Cluster): Promise<void> {
  const clock = new ManualClock(T0);
  const ledger = new Ledger(client, { keyPrefix: uniquePrefix(), retentionMs: 86_400_000, ledgerMaxEntries: 0, clock });
  await ledger.loadScripts();
  const accounts = Array.from({ length: 30 }, (_, i) => `tenant-${i}`);
  for (const [i, accountId] of accounts.entries()) {
    await give(ledger, accountId, 10, "allowance");
    const r = await ledger.reserve({ accountId, requestId: `${accountId}-r`, amountMicros: 4 * C, ttlMs: (i % 3 === 0 ? 60 : 1) * MINUTE });
    expect(r.status).toBe("held");
  }
  const sweeper = new Sweeper(ledger, { intervalMs: 0, logger: quiet, nowMs: () => clock.nowMs() });

  expect(await sweeper.sweepOnce()).toBe(0); // nothing is due yet
  clock.advance(MINUTE);
  expect(await sweeper.sweepOnce()).toBe(20);
  for (const [i, accountId] of accounts.entries()) {
    const heldMicros = i % 3 === 0 ? 4 * C : 0;
    // Read the hash itself: balance() would touch the account and release the hold on its own.
    expect(Number(await client.hget(ledger.keys.account(accountId).acct, "held"))).toBe(heldMicros);
    await expectConsistent(ledger, accountId);
  }
  expect(await sweeper.sweepOnce()).toBe(0); // swept accounts left the index
  clock.advance(59 * MINUTE);
  expect(await sweeper.sweepOnce()).toBe(10);
  for (const accountId of accounts) {
    expect((await ledger.balance(accountId)).heldMicros).toBe(0);
  }
}

describe("the sweeper releases holds of accounts nobody touches", () => {
  let server: TestRedis;
  let cluster: TestCluster;
  beforeAll(async () => {
    [server, cluster] = await Promise.all([startTestRedis(), startTestCluster()]);
  });
  afterAll(async () => {
    await Promise.all([server.stop(), cluster.stop()]);
  });

  it("on one Redis", async () => {
    const redis = new Redis(server.url);
    try {
      await abandonedHolds(redis);
    } finally {
      redis.disconnect();
    }
  });

  it("on Redis Cluster, where every script's keys must share one hash slot", async () => {
    const client = new Cluster(cluster.nodes);
    try {
      await abandonedHolds(client);
    } finally {
      client.disconnect();
    }
  });
});

describe("keys", () => {
  it("every key of an account, and its sweep index, hash to the account's slot", () => {
    for (const accountId of ["acme", "a", "tenant-42", "x.y_z-0", "Z".repeat(128)]) {
      const keys = new KeySpace("creditd").account(accountId);
      const slot = calculateSlot(accountId);
      for (const key of [keys.acct, keys.holds, keys.ledger, keys.sweep, keys.reservation("req-1"), keys.grant("g:1")]) {
        expect(calculateSlot(key), key).toBe(slot);
      }
    }
  });
});
