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
async function abandonedHolds(client: Redis | Cluster, scanKeysPerSlot?: number): Promise<void> {
  const clock = new ManualClock(T0);
  const ledger = new Ledger(client, { keyPrefix: uniquePrefix(), retentionMs: 86_400_000, ledgerMaxEntries: 0, clock });
  await ledger.loadScripts();
  const accounts = Array.from({ length: 30 }, (_, i) => `tenant-${i}`);
  for (const [i, accountId] of accounts.entries()) {
    await give(ledger, accountId, 10, "allowance");
    const r = await ledger.reserve({ accountId, requestId: `${accountId}-r`, amountMicros: 4 * C, ttlMs: (i % 3 === 0 ? 60 : 1) * MINUTE });
    expect(r.status).toBe("held");
  }
  const sweeper = new Sweeper(ledger, {
    intervalMs: 0,
    logger: quiet,
    nowMs: () => clock.nowMs(),
    ...(scanKeysPerSlot !== undefined ? { scanKeysPerSlot } : {}),
  });

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

  // The default finds the indexes with SCAN on these small keyspaces; 0 reads every slot's index.
  for (const [mode, scanKeysPerSlot] of [["finding indexes with SCAN", undefined], ["reading every slot's index", 0]] as const) {
    it(`on one Redis, ${mode}`, async () => {
      const redis = new Redis(server.url);
      try {
        await abandonedHolds(redis, scanKeysPerSlot);
      } finally {
        redis.disconnect();
      }
    });

    it(`on Redis Cluster, where every script's keys must share one hash slot, ${mode}`, async () => {
      const client = new Cluster(cluster.nodes);
      try {
        await abandonedHolds(client, scanKeysPerSlot);
      } finally {
        client.disconnect();
      }
    });
  }
});

describe("how the sweeper finds the indexes to read", () => {
  let server: TestRedis;
  let redis: Redis;
  beforeAll(async () => {
    server = await startTestRedis();
    redis = new Redis(server.url);
  });
  afterAll(async () => {
    redis.disconnect();
    await server.stop();
  });

  /** ZRANGEBYSCOREs one pass sends, from Redis's own command counts. */
  async function readsOfOnePass(sweeper: Sweeper): Promise<{ reads: number; touched: number }> {
    await redis.config("RESETSTAT");
    const touched = await sweeper.sweepOnce();
    const stats = await redis.info("commandstats");
    return { reads: Number(/cmdstat_zrangebyscore:calls=(\d+)/.exec(stats)?.[1] ?? 0), touched };
  }

  it("reads only the indexes that exist on a small keyspace, every slot's on a big one (DBSIZE)", async () => {
    const clock = new ManualClock(T0);
    const ledger = new Ledger(redis, { keyPrefix: uniquePrefix(), retentionMs: 86_400_000, ledgerMaxEntries: 0, clock });
    await ledger.loadScripts();
    const accounts = Array.from({ length: 12 }, (_, i) => `acct-${i}`);
    for (const accountId of accounts) {
      await give(ledger, accountId, 10, "allowance");
      await ledger.reserve({ accountId, requestId: `${accountId}-r`, amountMicros: C, ttlMs: MINUTE });
    }
    const slotsWithHolds = new Set(accounts.map((a) => calculateSlot(a))).size;
    const sweeper = (scanKeysPerSlot?: number) =>
      new Sweeper(ledger, { intervalMs: 0, logger: quiet, nowMs: () => clock.nowMs(), ...(scanKeysPerSlot !== undefined ? { scanKeysPerSlot } : {}) });

    expect(await readsOfOnePass(sweeper())).toEqual({ reads: slotsWithHolds, touched: 0 });
    expect(await readsOfOnePass(sweeper(0))).toEqual({ reads: 16_384, touched: 0 });

    // More keys than 1 per slot: with scanKeysPerSlot 1 walking them would cost more than reading every index.
    for (let i = 0; i < 17_000; i += 1000) {
      const p = redis.pipeline();
      for (let j = i; j < i + 1000; j++) p.set(`filler:{${j}}`, "x");
      await p.exec();
    }
    expect(await readsOfOnePass(sweeper(1))).toEqual({ reads: 16_384, touched: 0 });
    expect(await readsOfOnePass(sweeper())).toEqual({ reads: slotsWithHolds, touched: 0 });

    // Every due hold is released (the touches' scripts read too: only the count of touched accounts tells here).
    clock.advance(MINUTE);
    expect((await readsOfOnePass(sweeper())).touched).toBe(accounts.length);
    for (const accountId of accounts) {
      expect(Number(await redis.hget(ledger.keys.account(accountId).acct, "held"))).toBe(0);
    }
    // The indexes are gone with their last account: nothing is left to read.
    expect(await readsOfOnePass(sweeper())).toEqual({ reads: 0, touched: 0 });
  }, 30_000);

  it("reads only keys of exactly the index form: not another key matching the pattern, nor another type", async () => {
    const clock = new ManualClock(T0);
    const ledger = new Ledger(redis, { keyPrefix: uniquePrefix(), retentionMs: 86_400_000, ledgerMaxEntries: 0, clock });
    await ledger.loadScripts();
    const prefix = ledger.keys.prefix;
    // A zset whose tag is not the slot tag of its slot, and a string at a real index's name.
    await redis.zadd(`${prefix}:sweep:{not-a-slot-tag}`, 0, "intruder");
    await redis.set(ledger.keys.sweepIndexOfSlot(7), "not a zset");
    const sweeper = new Sweeper(ledger, { intervalMs: 0, logger: quiet, nowMs: () => clock.nowMs() + MINUTE });
    expect(await readsOfOnePass(sweeper)).toEqual({ reads: 0, touched: 0 });
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
