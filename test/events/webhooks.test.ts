// Webhook delivery against a real redis-server and a real HTTP receiver: events come from real Ledger operations.
import { setTimeout as sleep } from "node:timers/promises";
import type { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import { decodeEvent, eventJson, slotTagOfEventsKey } from "../../src/events/event.js";
import { webhookSignature } from "../../src/events/webhook-delivery.js";
import {
  WEBHOOK_GROUP,
  WebhookDispatcher,
  type WebhookOptions,
  deadLetterKey,
  retryCeilingMs,
  retryDelayMs,
} from "../../src/events/webhooks.js";
import { loadScript } from "../../src/ledger/script-loader.js";
import { C, MINUTE, give, openLedger } from "../support/ledger.js";
import { uniquePrefix, useTestRedis } from "../support/redis.js";
import { type Answer, type Received, captureLogger, readmeVerifier, startReceiver, until } from "./webhooks-support.js";

const r = useTestRedis();
const SECRET = "whsec_test_5f0c2a9e81d4b7";

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

async function receiver(answer?: (req: Received, nth: number) => Answer) {
  const rc = await startReceiver(answer);
  cleanups.push(() => rc.close());
  return rc;
}

/** Short timeouts and backoffs; no periodic pass unless a test runs one (passOnce) or the start's. */
function dispatcher(prefix: string, url: string, over: Partial<WebhookOptions> = {}) {
  const log = captureLogger();
  const d = new WebhookDispatcher(r.redis, {
    url,
    secret: SECRET,
    keyPrefix: prefix,
    maxAttempts: 5,
    timeoutMs: 500,
    backoffMs: 20,
    leaseGraceMs: 200,
    passIntervalMs: 600_000,
    logger: log.logger,
    ...over,
  });
  cleanups.push(() => d.stop(500));
  return { d, log };
}

async function eventStreams(redis: Redis, prefix: string): Promise<string[]> {
  return (await redis.keys(`${prefix}:events:*`)).sort();
}

/** Every event in the prefix's events streams: id → the webhook body creditd must send for it. */
async function produced(redis: Redis, prefix: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const key of await eventStreams(redis, prefix)) {
    const tag = slotTagOfEventsKey(key)!;
    for (const [id, fields] of await redis.xrange(key, "-", "+")) {
      const event = decodeEvent(tag, id, fields);
      out.set(event.id, eventJson(event));
    }
  }
  return out;
}

/** Entries of the webhooks group not acked yet, over every events stream of the prefix. */
async function pending(redis: Redis, prefix: string): Promise<number> {
  let n = 0;
  for (const key of await eventStreams(redis, prefix)) {
    const groups = (await redis.xinfo("GROUPS", key)) as unknown[][];
    if (!groups.some((g) => g[1] === WEBHOOK_GROUP)) continue;
    n += Number(((await redis.xpending(key, WEBHOOK_GROUP)) as [number])[0]);
  }
  return n;
}

function fields(flat: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!;
  return out;
}

describe("delivery", () => {
  it("POSTs each event once, signed so that the README's check accepts it and refuses a forgery or a replay", async () => {
    const verify = await readmeVerifier();
    const { ledger, prefix } = await openLedger(r.redis);
    await give(ledger, "early", 1, "topup"); // before any dispatcher: not sent
    const rc = await receiver();
    const { d } = dispatcher(prefix, rc.url);
    await d.start();
    await give(ledger, "acme", 50, "topup", { grantId: "topup-1" });

    await until(() => rc.received.length >= 1, 10_000, "the delivery");
    await until(async () => (await pending(r.redis, prefix)) === 0, 5000, "the ack");
    await sleep(200);
    expect(rc.received).toHaveLength(1);
    const got = rc.received[0]!;

    const bodies = await produced(r.redis, prefix);
    expect(bodies.size).toBe(2);
    expect(got.body.toString("utf8")).toBe(bodies.get(got.id));
    expect(got.json).toMatchObject({
      type: "grant",
      accountId: "acme",
      grant: { grantId: "topup-1", kind: "topup", amountMicros: String(50 * C) },
    });
    expect(got.headers["content-type"]).toBe("application/json");
    expect(got.headers["user-agent"]).toBe("creditd");
    expect(got.headers["creditd-event-id"]).toBe(got.id);
    expect(got.headers["creditd-event-type"]).toBe("grant");

    const signature = got.headers["creditd-signature"];
    expect(signature).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    expect(verify(got.body, signature, SECRET)).toBe(true);
    expect(verify(got.body.toString("utf8"), signature, SECRET)).toBe(true);
    expect(verify(got.body, signature, "another-secret-0123456789")).toBe(false);
    const forged = got.body.toString("utf8").replace(String(50 * C), String(500 * C));
    expect(forged).not.toBe(got.body.toString("utf8"));
    expect(verify(forged, signature, SECRET)).toBe(false);
    // A replay: a genuine signature, but of ten minutes ago.
    const now = Math.floor(Date.now() / 1000);
    expect(verify(got.body, webhookSignature(SECRET, got.body.toString("utf8"), now - 600), SECRET)).toBe(false);
    expect(verify(got.body, webhookSignature(SECRET, got.body.toString("utf8"), now - 60), SECRET)).toBe(true);
    expect(verify(got.body, undefined, SECRET)).toBe(false);
  });

  it("retries a receiver that answers 500 twice with the same id and body, then acks the 200", async () => {
    const { ledger, prefix } = await openLedger(r.redis);
    const rc = await receiver((_req, nth) => (nth <= 2 ? 500 : 200));
    const { d, log } = dispatcher(prefix, rc.url, { backoffMs: 60 });
    await d.start();
    await give(ledger, "acme", 5, "topup");

    await until(() => rc.received.length >= 3, 10_000, "three attempts");
    await until(async () => (await pending(r.redis, prefix)) === 0, 5000, "the ack");
    await sleep(300);
    expect(rc.received).toHaveLength(3);
    const [a, b, c] = rc.received as [Received, Received, Received];
    expect(new Set([a.id, b.id, c.id]).size).toBe(1);
    expect(b.body.equals(a.body) && c.body.equals(a.body)).toBe(true);
    // Each wait is at least half its ceiling: 60 ms after the first failure, 120 ms after the second.
    expect(b.at - a.at).toBeGreaterThanOrEqual(30 - 2);
    expect(c.at - b.at).toBeGreaterThanOrEqual(60 - 2);

    const failures = log.lines().filter((l) => l["msg"] === "webhook attempt failed");
    expect(failures.map((l) => [l["event_id"], l["attempt"], l["status"], l["type"], l["account"]])).toEqual([
      [a.id, 1, 500, "grant", "acme"],
      [a.id, 2, 500, "grant", "acme"],
    ]);
    const text = log.text();
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain(a.body.toString("utf8"));
    expect(text).not.toContain("amountMicros");
    expect(text).not.toContain(rc.url);
  });

  it("de-duplicating by id at the receiver yields exactly the events produced, despite failures and timeouts", async () => {
    const { ledger, clock, prefix } = await openLedger(r.redis);
    // About a third of first attempts fail with 500, a fifth hang past the timeout; retries succeed.
    const hash = (id: string) => [...id].reduce((h, ch) => (h * 31 + ch.charCodeAt(0)) >>> 0, 7);
    const rc = await receiver((req, nth) => {
      if (nth > 1) return 200;
      const h = hash(req.id);
      return h % 3 === 0 ? 500 : h % 5 === 1 ? "hang" : 200;
    });
    const { d } = dispatcher(prefix, rc.url, { timeoutMs: 300, maxAttempts: 10 });
    await d.start();

    const accounts = Array.from({ length: 12 }, (_, i) => `ws-${i}`);
    await Promise.all(accounts.map((a) => give(ledger, a, 10, "topup")));
    for (const [i, accountId] of accounts.entries()) {
      const held = await ledger.reserve({ accountId, requestId: `${accountId}-r1`, amountMicros: 4 * C, ttlMs: MINUTE });
      expect(held.status).toBe("held");
      if (i % 2 === 0) expect((await ledger.refund({ accountId, requestId: `${accountId}-r1` }, "failed")).status).toBe("refunded");
      if (i % 3 === 0) {
        // Everything held: available drops to 0.
        const all = await ledger.reserve({ accountId, requestId: `${accountId}-r2`, amountMicros: (i % 2 === 0 ? 10 : 6) * C, ttlMs: MINUTE });
        expect(all.status).toBe("held");
      }
    }
    clock.advance(2 * MINUTE);
    await Promise.all(accounts.map((a) => ledger.balance(a))); // expired holds are released: hold_expired

    const want = await produced(r.redis, prefix);
    const types = new Set([...want.values()].map((b) => (JSON.parse(b) as { type: string }).type));
    expect([...types].sort()).toEqual(["depleted", "grant", "hold_expired", "refund"]);
    await until(() => new Set(rc.ids()).size >= want.size, 20_000, `${want.size} distinct events`);
    await until(async () => (await pending(r.redis, prefix)) === 0, 10_000, "every ack");

    const firstBodies = new Map<string, string>();
    for (const got of rc.received) if (!firstBodies.has(got.id)) firstBodies.set(got.id, got.body.toString("utf8"));
    expect(new Map([...firstBodies].sort())).toEqual(new Map([...want].sort()));
    // Every attempt of an event carried the same body.
    for (const got of rc.received) expect(got.body.toString("utf8")).toBe(want.get(got.id));
    expect(rc.received.length).toBeGreaterThan(want.size); // there were retries
  });

  it("bounds the attempts in flight", async () => {
    const { ledger, prefix } = await openLedger(r.redis);
    let answer: Answer = "hang";
    const rc = await receiver(() => answer);
    const { d } = dispatcher(prefix, rc.url, { concurrency: 3, timeoutMs: 5000, maxAttempts: 10 });
    await d.start();
    await Promise.all(Array.from({ length: 10 }, (_, i) => give(ledger, `acct-${i}`, 1, "topup")));
    await until(() => rc.received.length >= 3, 5000, "three hanging attempts");
    await sleep(300);
    expect(rc.received).toHaveLength(3);
    expect(rc.maxOpen).toBe(3);
    answer = 200;
    rc.release(); // the three fail (connection closed) and are retried
    await until(() => new Set(rc.ids()).size >= 10, 10_000, "all ten");
    await until(async () => (await pending(r.redis, prefix)) === 0, 5000, "every ack");
    expect(rc.maxOpen).toBe(3);
  });
});

describe("dead letters", () => {
  it("after the last attempt the event is in the slot's dead-letter stream, acked, and never tried again", async () => {
    const { ledger, prefix } = await openLedger(r.redis);
    const rc = await receiver(() => 503);
    const { d, log } = dispatcher(prefix, rc.url, { maxAttempts: 3 });
    await d.start();
    await give(ledger, "acme", 2, "topup");

    const tag = slotTagOfEventsKey(ledger.keys.account("acme").events)!;
    const dead = deadLetterKey(prefix, tag);
    await until(async () => (await r.redis.xlen(dead)) >= 1, 10_000, "the dead letter");
    const [[, flat]] = (await r.redis.xrange(dead, "-", "+")) as [[string, string[]]];
    const streamId = (await r.redis.xrange(ledger.keys.account("acme").events, "-", "+"))[0]![0];
    const got = rc.received[0]!;
    expect(fields(flat)).toEqual({
      event_id: got.id,
      type: "grant",
      account: "acme",
      stream_id: streamId,
      attempts: "3",
      last_status: "503",
      last_error: "HTTP 503",
      body: got.body.toString("utf8"),
    });
    expect(await pending(r.redis, prefix)).toBe(0);

    // Well past every backoff and lease, with passes: nothing more.
    await sleep(1000);
    await d.passOnce();
    await sleep(300);
    expect(rc.received).toHaveLength(3);
    expect(await r.redis.xlen(dead)).toBe(1);
    const deadLines = log.lines().filter((l) => l["msg"] === "webhook event dead-lettered after its last attempt");
    expect(deadLines).toHaveLength(1);
    expect(deadLines[0]).toMatchObject({ event_id: got.id, type: "grant", account: "acme", attempts: 3, status: 503 });
    expect(log.lines().filter((l) => l["msg"] === "webhook attempt failed")).toHaveLength(2);
  });

  it("a timeout is a failed attempt", async () => {
    const { ledger, prefix } = await openLedger(r.redis);
    const rc = await receiver(() => "hang");
    const { d } = dispatcher(prefix, rc.url, { maxAttempts: 2, timeoutMs: 150 });
    await d.start();
    await give(ledger, "acme", 2, "topup");
    const dead = deadLetterKey(prefix, slotTagOfEventsKey(ledger.keys.account("acme").events)!);
    await until(async () => (await r.redis.xlen(dead)) >= 1, 10_000, "the dead letter");
    const [[, flat]] = (await r.redis.xrange(dead, "-", "+")) as [[string, string[]]];
    expect(fields(flat)).toMatchObject({ attempts: "2", last_status: "0", last_error: "timeout after 150 ms" });
    expect(rc.received).toHaveLength(2);
  });

  it("a refused connection is a failed attempt, recorded by its code (not the receiver's address)", async () => {
    const { ledger, prefix } = await openLedger(r.redis);
    const gone = await startReceiver();
    await gone.close(); // nothing listens on its port any more
    const { d } = dispatcher(prefix, gone.url, { maxAttempts: 2 });
    await d.start();
    await give(ledger, "acme", 2, "topup");
    const dead = deadLetterKey(prefix, slotTagOfEventsKey(ledger.keys.account("acme").events)!);
    await until(async () => (await r.redis.xlen(dead)) >= 1, 10_000, "the dead letter");
    const [[, flat]] = (await r.redis.xrange(dead, "-", "+")) as [[string, string[]]];
    expect(fields(flat)).toMatchObject({ attempts: "2", last_status: "0", last_error: "ECONNREFUSED" });
  });

  it("the dead-letter script writes one record per entry, and only while it is pending", async () => {
    const prefix = uniquePrefix();
    const events = `${prefix}:events:{x}`;
    const dead = deadLetterKey(prefix, "x");
    const lua = loadScript(new URL("../../src/ledger/lua/", import.meta.url), "dead-letter-2");
    const id = (await r.redis.xadd(events, "*", "type", "grant", "account", "a"))!;
    await r.redis.xgroup("CREATE", events, WEBHOOK_GROUP, "0");
    await r.redis.xreadgroup("GROUP", WEBHOOK_GROUP, "c1", "STREAMS", events, ">");
    const move = () => r.redis.eval(lua, 2, events, dead, WEBHOOK_GROUP, id, 0, "event_id", `x-${id}`, "attempts", 8);
    expect(await move()).toBe(1);
    expect(await move()).toBe(0);
    expect(await r.redis.xlen(dead)).toBe(1);
    expect(Number(((await r.redis.xpending(events, WEBHOOK_GROUP)) as [number])[0])).toBe(0);
  });
});

describe("at least once across stops, restarts and replicas", () => {
  it("a dispatcher stopped mid-attempt leaves the event pending; another consumer delivers it after the lease", async () => {
    const { ledger, prefix } = await openLedger(r.redis);
    const rc = await receiver((_req, nth) => (nth === 1 ? "hang" : 200));
    const opts = { timeoutMs: 1500, leaseGraceMs: 300 };
    const first = dispatcher(prefix, rc.url, opts);
    await first.d.start();
    await give(ledger, "acme", 3, "topup");
    await until(() => rc.received.length >= 1, 5000, "the first attempt");
    await first.d.stop(100);

    const events = ledger.keys.account("acme").events;
    const rows = (await r.redis.xpending(events, WEBHOOK_GROUP, "-", "+", 10)) as Array<[string, string, number, number]>;
    expect(rows).toHaveLength(1);
    expect(rows[0]![1]).toBe(first.d.consumer);
    expect(rows[0]![3]).toBe(1);

    const second = dispatcher(prefix, rc.url, opts);
    expect(second.d.consumer).not.toBe(first.d.consumer);
    await second.d.start();
    await until(() => rc.received.length >= 2, 10_000, "the second attempt");
    await until(async () => (await pending(r.redis, prefix)) === 0, 5000, "the ack");
    const [a, b] = rc.received as [Received, Received];
    expect(b.id).toBe(a.id);
    expect(b.body.equals(a.body)).toBe(true);
    // Not before the first attempt's lease (timeout + grace) had passed.
    expect(b.at - a.at).toBeGreaterThanOrEqual(1800 - 50);
    expect(rc.received).toHaveLength(2);
  });

  it("claims what a consumer that is gone left pending, and counts its attempt", async () => {
    const { ledger, prefix } = await openLedger(r.redis);
    const events = ledger.keys.account("acme").events;
    const tag = slotTagOfEventsKey(events)!;
    // A consumer of an earlier process read the first event and died during its attempt.
    await r.redis.xgroup("CREATE", events, WEBHOOK_GROUP, "$", "MKSTREAM");
    await give(ledger, "acme", 3, "topup");
    await give(ledger, "acme", 4, "topup");
    const read = (await r.redis.xreadgroup("GROUP", WEBHOOK_GROUP, "ghost", "COUNT", 1, "STREAMS", events, ">")) as Array<
      [string, Array<[string, string[]]>]
    >;
    const ghostEvent = `${tag}-${read[0]![1][0]![0]}`;

    const rc = await receiver(() => 500);
    const { d } = dispatcher(prefix, rc.url, { timeoutMs: 300, leaseGraceMs: 100, maxAttempts: 2 });
    await d.start();
    const dead = deadLetterKey(prefix, tag);
    await until(async () => (await r.redis.xlen(dead)) >= 2, 10_000, "two dead letters");
    const letters = (await r.redis.xrange(dead, "-", "+")).map(([, f]) => fields(f));
    // The ghost's attempt was the first of two: one more, then the dead letter. The other event had both.
    expect(rc.count(ghostEvent)).toBe(1);
    expect(rc.received).toHaveLength(3);
    expect(letters.map((l) => [l["event_id"] === ghostEvent, l["attempts"], l["last_status"]]).sort()).toEqual([
      [false, "2", "500"],
      [true, "2", "500"],
    ]);
    expect(await pending(r.redis, prefix)).toBe(0);
    const consumers = (await r.redis.xinfo("CONSUMERS", events, WEBHOOK_GROUP)) as unknown[][];
    expect(consumers.find((c) => c[1] === "ghost")?.[3]).toBe(0);
  });

  it("an entry whose last attempt has no recorded outcome is dead-lettered without another attempt", async () => {
    const { ledger, prefix } = await openLedger(r.redis);
    const events = ledger.keys.account("acme").events;
    await r.redis.xgroup("CREATE", events, WEBHOOK_GROUP, "$", "MKSTREAM");
    await give(ledger, "acme", 3, "topup");
    await r.redis.xreadgroup("GROUP", WEBHOOK_GROUP, "ghost", "STREAMS", events, ">");

    const rc = await receiver();
    const { d } = dispatcher(prefix, rc.url, { timeoutMs: 300, leaseGraceMs: 100, maxAttempts: 1 });
    await d.start();
    const dead = deadLetterKey(prefix, slotTagOfEventsKey(events)!);
    await until(async () => (await r.redis.xlen(dead)) >= 1, 10_000, "the dead letter");
    const [[, flat]] = (await r.redis.xrange(dead, "-", "+")) as [[string, string[]]];
    expect(fields(flat)).toMatchObject({ attempts: "1", last_status: "0", last_error: "outcome of the last attempt not recorded" });
    expect(rc.received).toHaveLength(0);
  });

  it("two dispatchers on one Redis deliver each event once", async () => {
    const { ledger, prefix } = await openLedger(r.redis);
    const rc = await receiver();
    const one = dispatcher(prefix, rc.url);
    const two = dispatcher(prefix, rc.url);
    await Promise.all([one.d.start(), two.d.start()]);
    await Promise.all(Array.from({ length: 30 }, (_, i) => give(ledger, `tenant-${i % 10}`, 1 + i, "topup")));
    const want = await produced(r.redis, prefix);
    expect(want.size).toBe(30);
    await until(() => new Set(rc.ids()).size >= 30, 10_000, "thirty events");
    await until(async () => (await pending(r.redis, prefix)) === 0, 5000, "every ack");
    // Past every lease, with passes on both: still once each.
    await sleep(900);
    await Promise.all([one.d.passOnce(), two.d.passOnce()]);
    await sleep(200);
    expect(rc.received).toHaveLength(30);
    expect(new Set(rc.ids())).toEqual(new Set(want.keys()));
  });

  it("a stream the dispatchers have not seen yet is found by the pass, from when webhooks were first on", async () => {
    const { ledger, prefix } = await openLedger(r.redis);
    const rc = await receiver();
    const { d } = dispatcher(prefix, rc.url);
    await d.start();
    // Written behind the dispatcher's back: no publish, as if it had been disconnected.
    const events = ledger.keys.account("quiet").events;
    const id = (await r.redis.xadd(events, "*", "type", "grant", "account", "quiet", "t", "1", "amt", "5"))!;
    await sleep(100);
    expect(rc.received).toHaveLength(0);
    await d.passOnce();
    await until(() => rc.received.length >= 1, 5000, "the delivery");
    expect(rc.received[0]!.id).toBe(`${slotTagOfEventsKey(events)}-${id}`);
  });
});

describe("housekeeping", () => {
  it("forgets consumers that own nothing, never one with pending entries or itself", async () => {
    const prefix = uniquePrefix();
    const events = `${prefix}:events:{x}`;
    const lua = loadScript(new URL("../../src/ledger/lua/", import.meta.url), "webhook-consumers-1");
    await r.redis.xadd(events, "*", "type", "grant");
    await r.redis.xgroup("CREATE", events, WEBHOOK_GROUP, "0");
    await r.redis.xreadgroup("GROUP", WEBHOOK_GROUP, "busy", "STREAMS", events, ">");
    await r.redis.xgroup("CREATECONSUMER", events, WEBHOOK_GROUP, "idle");
    await r.redis.xgroup("CREATECONSUMER", events, WEBHOOK_GROUP, "me");
    await sleep(20);
    expect(await r.redis.eval(lua, 1, events, WEBHOOK_GROUP, 5, "me")).toBe(1);
    const names = ((await r.redis.xinfo("CONSUMERS", events, WEBHOOK_GROUP)) as unknown[][]).map((c) => c[1]);
    expect(names.sort()).toEqual(["busy", "me"]);
    // Not idle long enough: kept.
    await r.redis.xgroup("CREATECONSUMER", events, WEBHOOK_GROUP, "fresh");
    expect(await r.redis.eval(lua, 1, events, WEBHOOK_GROUP, 60_000, "me")).toBe(0);
  });

  it("retry waits double up to the cap, jittered between half and all", () => {
    expect([1, 2, 3, 4].map((n) => retryCeilingMs(n, 1000))).toEqual([1000, 2000, 4000, 8000]);
    expect(retryCeilingMs(11, 1000)).toBe(600_000);
    expect(retryCeilingMs(500, 1000)).toBe(600_000);
    expect(retryDelayMs(3, 1000, undefined, () => 0)).toBe(2000);
    expect(retryDelayMs(3, 1000, undefined, () => 0.999999)).toBe(4000);
  });
});
