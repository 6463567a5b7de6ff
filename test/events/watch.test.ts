// WatchEvents on real events: the real Ledger scripts write them to a real redis-server, the EventHub reads them,
// the real handler streams them (in-process here; test/rpc/streaming.test.ts covers the edges, the last tests
// here and test/e2e/watch-events.test.ts the whole server).
import { type MessageInitShape, create } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { Cluster, Redis } from "ioredis";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startApp } from "../../src/app.js";
import { EventHub } from "../../src/events/hub.js";
import {
  type Event,
  EventService,
  WatchEventsRequestSchema,
  type WatchEventsResponse,
} from "../../src/gen/creditd/v1/event_service_pb.js";
import { ManualClock } from "../../src/ledger/clock.js";
import { Ledger, type SubscriptionTerms } from "../../src/ledger/ledger.js";
import { slotTagOfEventsKey } from "../../src/events/event.js";
import { eventService } from "../../src/service/event-service.js";
import { ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { C, DAY, MINUTE, type TestLedger, give, openLedger, subscriptionTerms } from "../support/ledger.js";
import { startTestCluster, uniquePrefix, useTestRedis } from "../support/redis.js";
import { type TestStream, grpcStream, jsonStream, localStream } from "../support/watch.js";

const env = useTestRedis();
let t: TestLedger;
let hub: EventHub;
let handlers: ReturnType<typeof eventService>;

beforeEach(async () => {
  t = await openLedger(env.redis);
  hub = new EventHub(env.redis, { keys: t.ledger.keys });
  handlers = eventService({ hub });
});

afterEach(async () => {
  await hub.close();
});

const at = (iso: string) => Date.parse(iso);
let n = 0;
const rid = () => `req-${++n}`;

const terms = (over: Partial<SubscriptionTerms> = {}): SubscriptionTerms => subscriptionTerms({ warnAtPercent: [20], ...over });

function watch(req: MessageInitShape<typeof WatchEventsRequestSchema>, h = handlers): TestStream<WatchEventsResponse> {
  return localStream((signal) => h.watchEvents(create(WatchEventsRequestSchema, req), { signal }));
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Waits until `count` watchers of the hub have started (events written from then on reach them). */
const started = (count: number, h = hub) => until(`${count} watchers to start`, () => h.watching() === count);

/** Subscribers of the hub's channel on the Redis server. */
async function subscribers(redis: Redis = env.redis): Promise<number> {
  const reply = (await redis.call("PUBSUB", "NUMSUB", t.ledger.keys.eventsChannel())) as [string, number];
  return Number(reply[1]);
}

const eventOf = async (s: TestStream<WatchEventsResponse>): Promise<Event> => {
  const e = (await s.next()).event;
  if (!e) throw new Error("a WatchEventsResponse without an event");
  return e;
};

const grant = (accountId: string, credits: number, grantId: string) => give(t.ledger, accountId, credits, "topup", { grantId });

describe("WatchEvents for one account", () => {
  it("sees grant, refund, threshold, depleted, hold_expired and period_reset as they happen, decoded", async () => {
    const acct = "acme";
    t.clock.set(at("2026-03-05T00:00:00Z"));
    const sub = await t.ledger.setSubscription(acct, terms());
    expect(sub.status).toBe("ok");
    const s = watch({ accountId: acct });
    await started(1);
    const tag = slotTagOfEventsKey(t.ledger.keys.account(acct).events)!;
    const check = (e: Event, type: string, timeMs: number): void => {
      expect(e.type).toBe(type);
      expect(e.accountId).toBe(acct);
      expect(e.id.startsWith(`${tag}-`)).toBe(true);
      expect(e.time && timestampMs(e.time)).toBe(timeMs);
    };

    await grant(acct, 5, "pack-1");
    let e = await eventOf(s);
    check(e, "grant", t.clock.nowMs());
    expect(e.detail.case).toBe("grant");
    expect(e.detail.value).toMatchObject({ grantId: "pack-1", kind: "topup", amountMicros: BigInt(5 * C) });
    if (e.detail.case === "grant") {
      expect(e.detail.value.expiresAt).toBeUndefined(); // never expires
      expect(e.detail.value.bucketId).not.toBe("");
    }

    const r1 = rid();
    expect((await t.ledger.reserve({ accountId: acct, requestId: r1, amountMicros: 3 * C, ttlMs: MINUTE })).status).toBe("held");
    await t.ledger.refund({ accountId: acct, requestId: r1 }, "upstream 500");
    e = await eventOf(s);
    check(e, "refund", t.clock.nowMs());
    expect(e.detail).toMatchObject({
      case: "refund",
      value: { requestId: r1, amountMicros: BigInt(3 * C), toExpiredMicros: 0n, from: "held", reason: "upstream 500" },
    });

    // 105 available of a 100-credit period; holding 90 leaves 15: below 20 %.
    t.clock.advance(MINUTE);
    const r2 = rid();
    expect((await t.ledger.reserve({ accountId: acct, requestId: r2, amountMicros: 90 * C, ttlMs: DAY })).status).toBe("held");
    e = await eventOf(s);
    check(e, "threshold", t.clock.nowMs());
    expect(e.detail.case).toBe("threshold");
    expect(e.detail.value).toMatchObject({ percent: 20, availableMicros: BigInt(15 * C), periodCreditsMicros: BigInt(100 * C) });
    expect(e.detail.case === "threshold" && e.detail.value.periodEnd && timestampMs(e.detail.value.periodEnd)).toBe(
      at("2026-04-05T00:00:00Z"),
    );

    // Charging 105 for the hold of 90 takes the other 15: nothing left.
    expect((await t.ledger.settle({ accountId: acct, requestId: r2 }, 105 * C)).status).toBe("settled");
    e = await eventOf(s);
    check(e, "depleted", t.clock.nowMs());
    expect(e.detail).toMatchObject({ case: "depleted", value: { periodCreditsMicros: BigInt(100 * C) } });

    await grant(acct, 10, "pack-2");
    expect((await eventOf(s)).detail).toMatchObject({ case: "grant", value: { grantId: "pack-2" } });
    const r3 = rid();
    const holdAt = t.clock.nowMs();
    expect((await t.ledger.reserve({ accountId: acct, requestId: r3, amountMicros: 4 * C, ttlMs: MINUTE })).status).toBe("held");
    t.clock.advance(2 * MINUTE);
    await t.ledger.balance(acct); // the next touch of the account releases the expired hold
    e = await eventOf(s);
    check(e, "hold_expired", t.clock.nowMs());
    expect(e.detail).toMatchObject({ case: "holdExpired", value: { requestId: r3, amountMicros: BigInt(4 * C) } });
    expect(e.detail.case === "holdExpired" && e.detail.value.deadline && timestampMs(e.detail.value.deadline)).toBe(
      holdAt + MINUTE,
    );

    t.clock.set(at("2026-04-05T00:00:00Z"));
    await t.ledger.balance(acct);
    e = await eventOf(s);
    check(e, "period_reset", at("2026-04-05T00:00:00Z"));
    expect(e.detail.case).toBe("periodReset");
    expect(e.detail.value).toMatchObject({ planId: "base", missedPeriods: 0, periodCreditsMicros: BigInt(100 * C) });
    if (e.detail.case === "periodReset") {
      expect(timestampMs(e.detail.value.periodStart!)).toBe(at("2026-04-05T00:00:00Z"));
      expect(timestampMs(e.detail.value.periodEnd!)).toBe(at("2026-05-05T00:00:00Z"));
    }

    // Ids are unique and the stream's order is kept.
    const ids = s.received.map((m) => m.event!.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(s.received.map((m) => m.event!.type)).toEqual([
      "grant",
      "refund",
      "threshold",
      "depleted",
      "grant",
      "hold_expired",
      "period_reset",
    ]);
    s.cancel();
    expect((await s.ended()).code).toBe(0);
  });

  it("an account's watcher sees only its account, a watcher of all sees both, a types filter only those types", async () => {
    const mine = watch({ accountId: "ann-co" });
    const all = watch({});
    const refunds = watch({ types: ["refund"] });
    const annGrants = watch({ accountId: "ann-co", types: ["grant"] });
    await started(4);
    await grant("ann-co", 1, "a1");
    await grant("bob-co", 2, "b1");
    const r = rid();
    await t.ledger.reserve({ accountId: "bob-co", requestId: r, amountMicros: C, ttlMs: MINUTE });
    await t.ledger.refund({ accountId: "bob-co", requestId: r }, "user cancelled");
    await t.ledger.reserve({ accountId: "ann-co", requestId: rid(), amountMicros: C, ttlMs: MINUTE }); // 0 left: depleted
    await grant("ann-co", 3, "a2");
    // Every event reaches every watcher it matches in the same dispatch, so once the watch-all has them all, the
    // others have theirs.
    await until("the watch-all to see 5 events", () => all.received.length >= 5);
    const seen = (s: TestStream<WatchEventsResponse>) => s.received.map((m) => `${m.event!.accountId} ${m.event!.type}`);
    expect(seen(mine)).toEqual(["ann-co grant", "ann-co depleted", "ann-co grant"]);
    expect([...seen(all)].sort()).toEqual(["ann-co depleted", "ann-co grant", "ann-co grant", "bob-co grant", "bob-co refund"]);
    // Per account, the order is the order of the changes.
    expect(seen(all).filter((x) => x.startsWith("ann-co"))).toEqual(seen(mine));
    expect(seen(refunds)).toEqual(["bob-co refund"]);
    expect(seen(annGrants)).toEqual(["ann-co grant", "ann-co grant"]);
    for (const s of [mine, all, refunds, annGrants]) s.cancel();
  });
});

describe("no history", () => {
  it("a watcher never gets what happened before it started, on a stream the hub reads for the first time or not", async () => {
    // Written before any watcher: the hub has no subscription yet, and this stream has history.
    await grant("early", 1, "before-1");
    expect(await subscribers()).toBe(0);
    const first = watch({ accountId: "early" });
    await started(1);
    expect(await subscribers()).toBe(1);
    await grant("early", 2, "during-1");
    expect((await eventOf(first)).detail).toMatchObject({ case: "grant", value: { grantId: "during-1" } });

    // The hub is subscribed and reading this stream: a second watcher still starts from its own start.
    await grant("early", 3, "before-2");
    expect((await eventOf(first)).detail).toMatchObject({ value: { grantId: "before-2" } });
    const second = watch({ accountId: "early" });
    await started(2);
    await grant("early", 4, "during-2");
    expect((await eventOf(second)).detail).toMatchObject({ value: { grantId: "during-2" } });
    expect((await eventOf(first)).detail).toMatchObject({ value: { grantId: "during-2" } });
    expect(second.received).toHaveLength(1);
    first.cancel();
    second.cancel();
  });

  it("a stream the hub first reads long after subscribing still gives a new watcher nothing older than its start", async () => {
    expect(t.ledger.keys.account("seen-a").events).not.toBe(t.ledger.keys.account("unseen-b").events);
    const a = watch({ accountId: "seen-a" });
    await started(1);
    // The hub misses the publish of this first event on unseen-b's stream (its connection is down), so that stream
    // stays unknown to it, and the event is older than the watcher below.
    await env.redis.call("CLIENT", "KILL", "TYPE", "pubsub");
    await grant("unseen-b", 1, "b-before");
    await until("the subscription to be back", async () => (await subscribers()) === 1);
    const b = watch({ accountId: "unseen-b" });
    await started(2);
    // Now the hub hears of the stream and reads it from its own subscription's start, b-before included.
    await grant("unseen-b", 2, "b-after");
    expect((await eventOf(b)).detail).toMatchObject({ value: { grantId: "b-after" } });
    await grant("seen-a", 1, "a-after");
    expect((await eventOf(a)).detail).toMatchObject({ value: { grantId: "a-after" } });
    expect(b.received).toHaveLength(1);
    a.cancel();
    b.cancel();
  });

  it("subscribes with the first watcher and unsubscribes when the last one leaves", async () => {
    expect(await subscribers()).toBe(0);
    const a = watch({ accountId: "x1" });
    const b = watch({});
    await started(2);
    expect(await subscribers()).toBe(1);
    a.cancel();
    await a.ended();
    await until("the watcher to leave", () => hub.watching() === 1);
    expect(await subscribers()).toBe(1);
    b.cancel();
    await b.ended();
    await until("the subscription to go", async () => (await subscribers()) === 0);
    // And again from nothing.
    const c = watch({ accountId: "x1" });
    await started(1);
    await grant("x1", 1, "again");
    expect((await eventOf(c)).detail).toMatchObject({ value: { grantId: "again" } });
    c.cancel();
  });

  it("catches up on a stream it knows after its subscription connection was cut", async () => {
    const s = watch({ accountId: "cut" });
    await started(1);
    await grant("cut", 1, "c1");
    expect((await eventOf(s)).detail).toMatchObject({ value: { grantId: "c1" } });
    // Drop the hub's pub/sub connection; ioredis reconnects and subscribes again, but a publish sent meanwhile is lost.
    await env.redis.call("CLIENT", "KILL", "TYPE", "pubsub");
    await grant("cut", 2, "c2");
    expect((await eventOf(s)).detail).toMatchObject({ value: { grantId: "c2" } });
    await until("the subscription to be back", async () => (await subscribers()) === 1);
    await grant("cut", 3, "c3");
    expect((await eventOf(s)).detail).toMatchObject({ value: { grantId: "c3" } });
    s.cancel();
  });
});

describe("bounds and input", () => {
  it("a watcher that falls maxBuffered events behind is ended with RESOURCE_EXHAUSTED; the others go on", async () => {
    const small = new EventHub(env.redis, { keys: t.ledger.keys, maxBuffered: 20 });
    const h = eventService({ hub: small });
    try {
      const reader = watch({ accountId: "busy" }, h);
      // The slow one: its first next() starts it, and then nothing reads it.
      const ctl = new AbortController();
      const slow = h.watchEvents(create(WatchEventsRequestSchema, { accountId: "busy" }), { signal: ctl.signal })[Symbol.asyncIterator]();
      const first = slow.next();
      await started(2, small);
      for (let i = 0; i < 25; i++) await grant("busy", 1, `flood-${i}`);
      await until("the reader to see all 25", () => reader.received.length === 25);
      expect((await first).value?.event?.detail).toMatchObject({ value: { grantId: "flood-0" } });
      // 24 more arrived while nobody read: over 20, so it was ended with its buffer dropped.
      const err = await slow.next().then(
        (r) => r,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.ResourceExhausted);
      expect((err as ConnectError).rawMessage).toMatch(/fell behind: 20 events/);
      expect(small.watching()).toBe(1);
      await grant("busy", 1, "after");
      await until("the reader to go on", () => reader.received.length === 26);
      reader.cancel();
    } finally {
      await small.close();
    }
  });

  it("refuses a bad account_id or type with INVALID_ARGUMENT naming the field, and subscribes to nothing", async () => {
    const cases: Array<[MessageInitShape<typeof WatchEventsRequestSchema>, string]> = [
      [{ accountId: "not an id" }, "account_id"],
      [{ accountId: "x".repeat(129) }, "account_id"],
      [{ types: ["grant", "nope"] }, "types[1]"],
      [{ types: [""] }, "types[0]"],
    ];
    for (const [req, field] of cases) {
      const s = watch(req);
      const end = await s.ended();
      expect(end.code).toBe(Code.InvalidArgument);
      expect(end.message.startsWith(`${field}: `)).toBe(true);
      expect((end.error as ConnectError).findDetails(ErrorInfoSchema)[0]?.metadata).toMatchObject({ field });
      expect(s.received).toHaveLength(0);
    }
    expect(await subscribers()).toBe(0);
  });

  it("close() ends every watcher and refuses new ones", async () => {
    const s = watch({});
    await started(1);
    await hub.close();
    expect((await s.ended()).code).toBe(0);
    const late = watch({});
    expect(await late.ended()).toMatchObject({ code: Code.Unavailable });
    await until("the subscription to go", async () => (await subscribers()) === 0);
  });
});

describe("Redis Cluster", () => {
  it("the hub subscribes through a Cluster client and reads each slot's stream", async () => {
    const cluster = await startTestCluster();
    const client = new Cluster(cluster.nodes);
    const prefix = uniquePrefix();
    const clock = new ManualClock(Date.UTC(2026, 0, 15));
    const ledger = new Ledger(client, { keyPrefix: prefix, retentionMs: DAY, ledgerMaxEntries: 0, clock });
    const clusterHub = new EventHub(client, { keys: ledger.keys });
    try {
      await ledger.loadScripts();
      // Accounts on different hash slots, hence different streams.
      expect(ledger.keys.account("c-one").events).not.toBe(ledger.keys.account("c-two").events);
      const s = watch({}, eventService({ hub: clusterHub }));
      await started(1, clusterHub);
      await give(ledger, "c-one", 1, "topup", { grantId: "g-one" });
      await give(ledger, "c-two", 2, "topup", { grantId: "g-two" });
      await until("both events", () => s.received.length === 2);
      expect(s.received.map((m) => `${m.event!.accountId}:${m.event!.detail.case === "grant" ? m.event!.detail.value.grantId : ""}`).sort()).toEqual([
        "c-one:g-one",
        "c-two:g-two",
      ]);
      s.cancel();
      await s.ended();
    } finally {
      await clusterHub.close();
      client.disconnect();
      await cluster.stop();
    }
  }, 30_000);
});

describe("the app", () => {
  it("serves WatchEvents on both edges, and stop() ends open streams at once with UNAVAILABLE", async () => {
    const redis = new Redis(env.server.url);
    const app = await startApp({
      redis,
      logger: pino({ level: "silent" }),
      config: {
        grpcAddr: "127.0.0.1:0",
        httpAddr: "127.0.0.1:0",
        keyPrefix: uniquePrefix(),
        holdTtlDefaultSeconds: 60,
        holdTtlMaxSeconds: 600,
        idempotencyTtlSeconds: 3600,
        ledgerMaxEntries: 0,
        sweepIntervalSeconds: 0,
        shutdownTimeoutSeconds: 30,
        catalog: undefined,
        maxPromptBytes: 1 << 20,
        countInlineMaxBytes: 16384,
        countWorkers: 1,
        countCacheEntries: 100,
      },
    });
    let stopped = false;
    try {
      const method = EventService.method.watchEvents;
      const overGrpc = grpcStream(`127.0.0.1:${app.grpcPort}`, method, { accountId: "app-acct" });
      const overJson = jsonStream(`http://127.0.0.1:${app.httpPort}`, method, { accountId: "app-acct" });
      await started(2, app.events);
      await give(app.ledger, "app-acct", 7, "topup", { grantId: "app-g" });
      for (const s of [overGrpc, overJson]) {
        expect((await eventOf(s)).detail).toMatchObject({ case: "grant", value: { grantId: "app-g", amountMicros: BigInt(7 * C) } });
      }
      const t0 = Date.now();
      await app.stop();
      stopped = true;
      // Well under shutdownTimeoutSeconds (30 s): streams do not hold the graceful stop.
      expect(Date.now() - t0).toBeLessThan(3000);
      for (const s of [overGrpc, overJson]) {
        expect(await s.ended(1000)).toMatchObject({ code: Code.Unavailable, message: "server shutting down" });
      }
      expect(app.events.watching()).toBe(0);
    } finally {
      if (!stopped) await app.stop();
      redis.disconnect();
    }
  }, 20_000);
});
