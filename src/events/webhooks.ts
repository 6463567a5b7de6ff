// Webhook delivery of account events: every event the scripts append to a slot's events stream is POSTed, signed, to
// CREDITD_WEBHOOK_URL, at least once, with retries, and moved to the slot's dead-letter stream after the last try.
//
// All the state lives in Redis, in a consumer group ("webhooks") on each slot's events stream, so any number of
// replicas share the work and a restart loses nothing:
// - a new entry is read by exactly one dispatcher (XREADGROUP ">"), which POSTs it at once;
// - an entry in the group's pending list (PEL) is due for its next attempt once it has been idle (since it was last
//   read or claimed) for lease + ceiling(deliveries), where deliveries is the PEL's own delivery counter (so the
//   attempt count survives restarts) and lease covers an attempt in flight; whoever is first to XCLAIM it with
//   that idle time as the minimum makes the next attempt, and XCLAIM counts it. A failed attempt sets the entry's
//   idle time (XCLAIM IDLE JUSTID) so that it falls due after its jittered backoff. Retries, attempts cut short by
//   a crash, and entries of consumers that are gone are thus one mechanism: a due entry, claimed by anyone.
// - 2xx acks the entry; the last failure moves it to the dead-letter stream and acks it in one script.
// Dispatchers are woken by the scripts' PUBLISH on `<prefix>:events`; a periodic pass over every slot's stream
// (XINFO GROUPS) finds what a lost publish or another replica left behind. Ordering is not guaranteed.
import { randomBytes } from "node:crypto";
import { setMaxListeners } from "node:events";
import { hostname } from "node:os";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { KeySpace } from "../ledger/keys.js";
import { globEscape, mastersWithSlots, slotKeysOn } from "../ledger/slot-keys.js";
import { isCluster } from "../ledger/ledger.js";
import { keyCount, loadScript } from "../ledger/script-loader.js";
import type { RedisClient } from "../redis/connect.js";
import type { Event } from "../gen/creditd/v1/event_service_pb.js";
import { decodeEvent, eventJson, slotTagOfEventsKey } from "./event.js";
import { postWebhook } from "./webhook-delivery.js";

/** The consumer group every dispatcher of a deployment shares, on every slot's events stream. */
export const WEBHOOK_GROUP = "webhooks";
/** No retry waits longer than this, however many attempts came before. */
export const MAX_BACKOFF_MS = 10 * 60_000;

/** The dead-letter stream of one slot: events whose last attempt failed (same hash tag as the events stream). */
export function deadLetterKey(prefix: string, slotTag: string): string {
  return `${prefix}:webhooks:dead:{${slotTag}}`;
}

/**
 * When webhooks were first turned on (Redis time, ms): a slot's group starts there, whenever a dispatcher first
 * sees the slot's stream. Starting at '$' would drop the first events of every slot, since a dispatcher learns of
 * a new stream from the very publish that announces its first entry; starting at 0 would send all history.
 */
export function webhooksSinceKey(prefix: string): string {
  return `${prefix}:webhooks:since`;
}

/** Before retry n+1 (after n failed attempts): base × 2^(n−1), capped. */
export function retryCeilingMs(failedAttempts: number, baseMs: number, maxMs = MAX_BACKOFF_MS): number {
  return Math.min(baseMs * 2 ** Math.min(Math.max(failedAttempts, 1) - 1, 40), maxMs);
}

/** The wait before retry n+1: between half and all of the ceiling, so receivers that recover are not hit in step. */
export function retryDelayMs(failedAttempts: number, baseMs: number, maxMs = MAX_BACKOFF_MS, random = Math.random): number {
  const ceiling = retryCeilingMs(failedAttempts, baseMs, maxMs);
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

const SCRIPTS = ["dead-letter-2", "webhook-consumers-1"] as const;
type ScriptName = (typeof SCRIPTS)[number];
const LUA_DIR = new URL("../ledger/lua/", import.meta.url);
let sources: Record<ScriptName, string> | undefined;

function scriptSources(): Record<ScriptName, string> {
  sources ??= Object.fromEntries(SCRIPTS.map((name) => [name, loadScript(LUA_DIR, name)])) as Record<
    ScriptName,
    string
  >;
  return sources;
}

/**
 * Loads the webhook scripts into every master, like Ledger.loadScripts, whether or not webhooks are configured:
 * every script in lua/ is loaded at start and after a reconnect.
 */
export async function loadWebhookScripts(redis: RedisClient): Promise<void> {
  const nodes: Redis[] = isCluster(redis) ? redis.nodes("master") : [redis];
  const src = scriptSources();
  await Promise.all(nodes.flatMap((node) => SCRIPTS.map((name) => node.script("LOAD", src[name]))));
}

export interface WebhookOptions {
  url: string;
  secret: string;
  keyPrefix: string;
  /** Attempts per event, the first included, before the dead-letter stream. */
  maxAttempts: number;
  /** One attempt's limit: a receiver slower than this has failed the attempt. */
  timeoutMs: number;
  /** The first retry's ceiling (see retryDelayMs). */
  backoffMs: number;
  logger: Pick<Logger, "debug" | "info" | "warn" | "error">;
  /** Attempts in flight at once (default 8): also what bounds the entries held in memory. */
  concurrency?: number;
  /** The periodic pass over every slot's stream (default 30 s, ±20%). */
  passIntervalMs?: number;
  /**
   * Added to timeoutMs to make the lease of an attempt in flight (default 5 s): no other dispatcher claims an entry
   * sooner after it was read or claimed, so an attempt is never duplicated while it runs (GC pauses and slow Redis
   * replies included, within this margin).
   */
  leaseGraceMs?: number;
  /** Cap of each dead-letter stream (approximate trimming; default 0 = none). */
  deadLetterMaxLen?: number;
  maxBackoffMs?: number;
  /** Default: host-pid-random, unique per process. */
  consumer?: string;
  /** Unix time for the signature (tests). */
  nowMs?: () => number;
}

interface StreamState {
  readonly key: string;
  readonly tag: string;
  /** The group is known to exist on this stream. */
  ready: boolean;
  /** Where the next page of the pending list starts ("-", or "(<id>" exclusive). */
  cursor: string;
  /** The shortest wait until a pending entry falls due, over the pages seen in the current round of the list. */
  roundWaitMs: number;
}

type StreamEntry = [id: string, fields: string[] | null];

const PEL_PAGE = 100;
/** Streams inspected per pipeline of the periodic pass. */
const PASS_BATCH = 1024;
/** Up to this many keys per slot a master owns, the pass finds the events streams with SCAN (see slotKeysOn). */
const SCAN_KEYS_PER_SLOT = 16;
/** Consumers without pending entries idle this long are forgotten (webhook-consumers-1.lua), every few passes. */
const CONSUMER_IDLE_MS = 60 * 60_000;
const CLEANUP_EVERY_PASSES = 10;
/** After a Redis error the dispatcher waits this long before its next command. */
const ERROR_PAUSE_MS = 1000;
const WARN_REPEAT_MS = 30_000;

type ScriptFn = (...args: Array<string | number>) => Promise<unknown>;

export class WebhookDispatcher {
  readonly consumer: string;
  private readonly keys: KeySpace;
  /** SCAN MATCH pattern of this deployment's events streams. */
  private readonly pattern: string;
  private readonly concurrency: number;
  private readonly passIntervalMs: number;
  private readonly leaseMs: number;
  private readonly maxBackoffMs: number;
  private readonly deadLetter: ScriptFn;
  private readonly forgetConsumers: ScriptFn;

  private readonly streams = new Map<string, StreamState>();
  /** Streams that may hold entries never read by the group. Insertion order is the round-robin order. */
  private readonly toRead = new Set<StreamState>();
  /** Streams whose pending list may hold due entries now. */
  private readonly toCheck = new Set<StreamState>();
  /** Streams whose pending entries fall due later, and when. */
  private readonly checkLater = new Map<StreamState, number>();
  private nextCheckAt = Infinity;
  private readonly inFlight = new Set<Promise<void>>();

  private since: string | undefined;
  private subscriber: RedisClient | undefined;
  private started = false;
  private stopping = false;
  private readonly stopController = new AbortController();
  private pumping: Promise<void> | undefined;
  private pumpAgain = false;
  private preferRead = false;
  private pausedUntil = 0;
  private wakeTimer: NodeJS.Timeout | undefined;
  private passing: Promise<void> | undefined;
  private passAgain = false;
  private passTimer: NodeJS.Timeout | undefined;
  private passes = 0;
  private lastWarning = { text: "", at: 0 };

  constructor(
    private readonly redis: RedisClient,
    private readonly opts: WebhookOptions,
  ) {
    this.keys = new KeySpace(opts.keyPrefix);
    this.pattern = `${globEscape(opts.keyPrefix)}:events:{*}`;
    this.consumer = opts.consumer ?? `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`;
    this.concurrency = opts.concurrency ?? 8;
    // Each attempt in flight listens for the stop; more than 10 would print a (false) leak warning.
    setMaxListeners(this.concurrency + 1, this.stopController.signal);
    this.passIntervalMs = opts.passIntervalMs ?? 30_000;
    this.leaseMs = opts.timeoutMs + (opts.leaseGraceMs ?? 5000);
    this.maxBackoffMs = opts.maxBackoffMs ?? MAX_BACKOFF_MS;
    const src = scriptSources();
    const define = (name: ScriptName): ScriptFn => {
      const command = `creditd_${name.replace(/-\d+$/, "").replace(/-/g, "_")}`;
      // EVALSHA, falling back to EVAL on NOSCRIPT (a restarted or failed-over Redis).
      redis.defineCommand(command, { numberOfKeys: keyCount(name), lua: src[name] });
      const fn = (redis as unknown as Record<string, ScriptFn>)[command];
      if (!fn) throw new Error(`ioredis did not define ${command}`);
      return fn.bind(redis);
    };
    this.deadLetter = define("dead-letter-2");
    this.forgetConsumers = define("webhook-consumers-1");
  }

  /**
   * Subscribes to the wake-ups and runs the first pass (which picks up what earlier dispatchers left pending).
   * Never rejects: Redis trouble is logged and the periodic pass tries again.
   */
  async start(): Promise<void> {
    if (this.started || this.stopping) return;
    this.started = true;
    const channel = this.keys.eventsChannel();
    const subscriber = (this.redis as Redis).duplicate() as RedisClient;
    this.subscriber = subscriber;
    // The main client already reports connection trouble; this connection follows the same Redis.
    subscriber.on("error", (err: Error) => this.opts.logger.debug({ err }, "webhook subscriber connection error"));
    subscriber.on("message", (_channel: string, message: string) => this.onPublish(message));
    try {
      await this.loadSince();
    } catch (err) {
      this.warn(err, "reading when webhooks were first on failed; retried when a stream is first seen");
    }
    let subscribedOnce = false;
    subscriber.on("ready", () => {
      if (!subscribedOnce || this.stopping) return;
      // Publishes sent while this connection was down are lost: look at every stream again.
      subscriber.subscribe(channel).catch((err: unknown) => this.warn(err, "webhook subscribe failed"));
      this.runPass();
    });
    try {
      await subscriber.subscribe(channel);
    } catch (err) {
      this.warn(err, "webhook subscribe failed; the periodic pass still delivers");
    }
    subscribedOnce = true;
    this.runPass();
    await this.passing;
  }

  /**
   * No new attempt starts; attempts in flight may finish for up to timeoutMs, then are abandoned. Whatever is not
   * acked stays pending in Redis, for this or another dispatcher to retry.
   */
  async stop(timeoutMs = 10_000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearTimeout(this.passTimer);
    clearTimeout(this.wakeTimer);
    this.subscriber?.disconnect();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    await Promise.race([Promise.allSettled([this.passing, this.pumping, ...this.inFlight]), timedOut]);
    clearTimeout(timer);
    // Attempts still running end now as "stopped", without touching Redis.
    this.stopController.abort();
    await Promise.allSettled([this.passing, this.pumping, ...this.inFlight]);
  }

  /**
   * One pass over every master's events streams: what needs reading, what is pending, which groups are missing.
   * Public for tests.
   */
  async passOnce(): Promise<void> {
    this.passes += 1;
    const cleanup = this.passes % CLEANUP_EVERY_PASSES === 1;
    const crowded: StreamState[] = [];
    for (const { node, slots } of mastersWithSlots(this.redis)) {
      // The streams SCAN finds when the master's keyspace is small, else every slot's (as the sweeper does).
      const keys = await slotKeysOn(node, slots, {
        keyOfSlot: (slot) => this.keys.eventsOfSlot(slot),
        pattern: this.pattern,
        type: "stream",
        keysPerSlot: SCAN_KEYS_PER_SLOT,
        stopped: () => this.stopping,
      });
      for (let i = 0; i < keys.length && !this.stopping; i += PASS_BATCH) {
        const batch = keys.slice(i, i + PASS_BATCH);
        // Existence is asked only of streams not known yet (XINFO of a missing key is an error reply).
        const unknown = batch.filter((key) => !this.streams.has(key));
        if (unknown.length > 0) {
          const pipeline = node.pipeline();
          for (const key of unknown) pipeline.exists(key);
          const replies = (await pipeline.exec()) ?? [];
          replies.forEach(([err, n], j) => {
            if (!err && n === 1) this.track(unknown[j]!);
          });
        }
        const known = batch.flatMap((key) => this.streams.get(key) ?? []);
        if (known.length === 0) continue;
        const pipeline = node.pipeline();
        for (const s of known) pipeline.xinfo("GROUPS", s.key);
        const replies = (await pipeline.exec()) ?? [];
        replies.forEach(([err, reply], j) => {
          const s = known[j]!;
          if (err) {
            // Gone (a flushed Redis); any other error (a slot that moved since) is for its new owner's pass.
            if (/no such key/i.test(err.message)) this.forget(s.key);
            return;
          }
          const group = groupInfo(reply as unknown[], WEBHOOK_GROUP);
          if (!group) {
            s.ready = false;
            this.toRead.add(s);
            return;
          }
          s.ready = true;
          // lag is null when Redis cannot tell (a group started at an id of our choosing): read to find out.
          if (group.lag !== 0) this.toRead.add(s);
          if (group.pending > 0) this.toCheck.add(s);
          if (cleanup && group.consumers > 1) crowded.push(s);
        });
        this.kick();
      }
    }
    await Promise.all(
      crowded.map((s) => this.forgetConsumers(s.key, WEBHOOK_GROUP, CONSUMER_IDLE_MS, this.consumer)),
    );
  }

  private runPass(): void {
    if (this.stopping) return;
    if (this.passing) {
      this.passAgain = true;
      return;
    }
    clearTimeout(this.passTimer);
    this.passing = this.passOnce()
      .catch((err: unknown) => this.warn(err, "webhook pass failed; retrying next interval"))
      .finally(() => {
        this.passing = undefined;
        if (this.stopping) return;
        if (this.passAgain) {
          this.passAgain = false;
          this.runPass();
          return;
        }
        const next = Math.round(this.passIntervalMs * (0.8 + Math.random() * 0.4));
        this.passTimer = setTimeout(() => this.runPass(), next).unref();
      });
  }

  private onPublish(message: string): void {
    const s = this.track(message);
    if (!s || this.stopping) return;
    this.toRead.add(s);
    this.kick();
  }

  private track(key: string): StreamState | undefined {
    let s = this.streams.get(key);
    if (s) return s;
    const tag = slotTagOfEventsKey(key);
    if (tag === null || key !== `${this.keys.prefix}:events:{${tag}}`) return undefined;
    s = { key, tag, ready: false, cursor: "-", roundWaitMs: Infinity };
    this.streams.set(key, s);
    return s;
  }

  private forget(key: string): void {
    const s = this.streams.get(key);
    if (!s) return;
    this.streams.delete(key);
    this.toRead.delete(s);
    this.toCheck.delete(s);
    this.checkLater.delete(s);
  }

  /** Runs the work loop unless it is running; it then goes round once more. */
  private kick(): void {
    if (this.stopping) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = this.pump()
      .catch((err: unknown) => this.warn(err, "webhook dispatch failed"))
      .finally(() => {
        this.pumping = undefined;
        if (this.pumpAgain) this.kick();
        else this.armWakeTimer();
      });
  }

  private async pump(): Promise<void> {
    for (;;) {
      this.pumpAgain = false;
      const now = Date.now();
      if (this.stopping || now < this.pausedUntil) return;
      this.promoteDueChecks(now);
      const free = this.concurrency - this.inFlight.size;
      // A finishing attempt kicks the loop again.
      if (free <= 0) return;
      // Alternate between retries and new entries, so neither starves the other.
      this.preferRead = !this.preferRead;
      const check = this.preferRead && this.toRead.size > 0 ? undefined : first(this.toCheck);
      const s = check ?? first(this.toRead);
      if (!s) return;
      try {
        if (!s.ready) await this.ensureGroup(s);
        if (!this.streams.has(s.key)) continue;
        if (check) await this.checkPending(s, free);
        else await this.readNew(s, free);
      } catch (err) {
        // Redis trouble: the stream keeps its place in the queues; the loop resumes after a pause.
        this.pausedUntil = Date.now() + ERROR_PAUSE_MS;
        throw err;
      }
    }
  }

  private async ensureGroup(s: StreamState): Promise<void> {
    const since = this.since ?? (await this.loadSince());
    try {
      await this.redis.xgroup("CREATE", s.key, WEBHOOK_GROUP, `${since}-0`);
    } catch (err) {
      const message = (err as Error).message;
      if (/requires the key to exist/i.test(message)) {
        this.forget(s.key);
        return;
      }
      if (!message.startsWith("BUSYGROUP")) throw err;
    }
    s.ready = true;
  }

  /**
   * When webhooks were first on. Read at start, before any stream can be seen: read later, when the publish of a
   * slot's first event arrives, a first dispatcher would record a time after that event and skip it.
   */
  private async loadSince(): Promise<string> {
    const [seconds, micros] = await this.redis.time();
    const mine = String(Number(seconds) * 1000 + Math.floor(Number(micros) / 1000));
    // SET NX GET: the first dispatcher ever decides; the others read its value in the same command.
    const first = (await this.redis.call("SET", webhooksSinceKey(this.keys.prefix), mine, "NX", "GET")) as
      | string
      | null;
    this.since = first ?? mine;
    return this.since;
  }

  /** New entries, up to the free slots; the stream stays queued while it may hold more. */
  private async readNew(s: StreamState, free: number): Promise<void> {
    // Dequeued before the read, so a publish arriving during it queues the stream again.
    this.toRead.delete(s);
    let reply: Array<[string, StreamEntry[]]> | null;
    try {
      reply = (await this.redis.xreadgroup(
        "GROUP", WEBHOOK_GROUP, this.consumer, "COUNT", free, "STREAMS", s.key, ">",
      )) as Array<[string, StreamEntry[]]> | null;
    } catch (err) {
      this.toRead.add(s);
      if (/NOGROUP/.test((err as Error).message)) {
        s.ready = false;
        return;
      }
      throw err;
    }
    const entries = reply?.[0]?.[1] ?? [];
    if (entries.length >= free) this.toRead.add(s);
    for (const [id, fields] of entries) this.launch(s, id, fields ?? [], 1);
  }

  /**
   * One page of the pending list: claims the entries that are due (up to the free slots) and notes when the
   * others will be. The pages go round the list, so a long list of entries waiting for long backoffs does not hide
   * the ones behind it.
   */
  private async checkPending(s: StreamState, free: number): Promise<void> {
    this.toCheck.delete(s);
    if (s.cursor === "-") this.checkLater.delete(s);
    // Not filtered by IDLE: the entries not due yet say when to look again.
    const rows = (await this.redis.xpending(s.key, WEBHOOK_GROUP, s.cursor, "+", PEL_PAGE)) as Array<
      [id: string, consumer: string, idleMs: number, deliveries: number]
    >;
    const claims: Array<{ id: string; minIdleMs: number; attempt: number }> = [];
    let previous = s.cursor;
    let resumeAt: string | undefined;
    for (const [id, , idleMs, deliveries] of rows) {
      const dueIdle = this.dueIdleMs(deliveries);
      if (idleMs >= dueIdle) {
        if (claims.length < free) claims.push({ id, minIdleMs: dueIdle, attempt: deliveries + 1 });
        else resumeAt ??= previous;
      } else {
        s.roundWaitMs = Math.min(s.roundWaitMs, dueIdle - idleMs);
      }
      previous = `(${id}`;
    }
    if (resumeAt !== undefined || rows.length === PEL_PAGE) {
      s.cursor = resumeAt ?? previous;
      this.toCheck.add(s);
    } else {
      s.cursor = "-";
      if (s.roundWaitMs < Infinity) this.checkAt(s, Date.now() + s.roundWaitMs);
      s.roundWaitMs = Infinity;
    }
    // The minimum idle time makes the claim safe: whoever claims first resets it, and the others get nothing.
    const claimed = await Promise.all(
      claims.map(async (c) => ({
        attempt: c.attempt,
        entries: (await this.redis.call("XCLAIM", s.key, WEBHOOK_GROUP, this.consumer, c.minIdleMs, c.id)) as StreamEntry[],
      })),
    );
    for (const { attempt, entries } of claimed) {
      // An entry trimmed from the stream meanwhile is dropped from the pending list by XCLAIM and not returned.
      for (const [id, fields] of entries) this.launch(s, id, fields ?? [], attempt);
    }
  }

  /** How long an entry delivered `deliveries` times must sit idle before it is due again. */
  private dueIdleMs(deliveries: number): number {
    return this.leaseMs + retryCeilingMs(deliveries, this.opts.backoffMs, this.maxBackoffMs);
  }

  private checkAt(s: StreamState, at: number): void {
    const current = this.checkLater.get(s);
    if (current !== undefined && current <= at) return;
    this.checkLater.set(s, at);
    this.nextCheckAt = Math.min(this.nextCheckAt, at);
  }

  private promoteDueChecks(now: number): void {
    if (now < this.nextCheckAt) return;
    let next = Infinity;
    for (const [s, at] of this.checkLater) {
      if (at <= now) {
        this.checkLater.delete(s);
        this.toCheck.add(s);
      } else {
        next = Math.min(next, at);
      }
    }
    this.nextCheckAt = next;
  }

  private armWakeTimer(): void {
    clearTimeout(this.wakeTimer);
    if (this.stopping) return;
    const now = Date.now();
    let at = this.nextCheckAt;
    if (now < this.pausedUntil && (this.toRead.size > 0 || this.toCheck.size > 0)) at = Math.min(at, this.pausedUntil);
    if (at === Infinity) return;
    this.wakeTimer = setTimeout(() => this.kick(), Math.min(Math.max(at - now, 0), 2 ** 31 - 1)).unref();
  }

  private launch(s: StreamState, streamId: string, fields: string[], attempt: number): void {
    // Not started: the entry stays pending and falls due for whichever dispatcher runs next.
    if (this.stopping) return;
    const claimedAt = Date.now();
    const p: Promise<void> = this.attempt(s, streamId, fields, attempt, claimedAt)
      .catch((err: unknown) => this.warn(err, "webhook bookkeeping failed; the event stays pending"))
      .finally(() => {
        this.inFlight.delete(p);
        this.kick();
      });
    this.inFlight.add(p);
  }

  private async attempt(s: StreamState, streamId: string, fields: string[], attempt: number, claimedAt: number) {
    const event = decodeEvent(s.tag, streamId, fields);
    const body = eventJson(event);
    const { maxAttempts } = this.opts;
    if (attempt > maxAttempts) {
      // The last attempt started but its outcome was never recorded (its dispatcher stopped or lost Redis).
      await this.moveToDeadLetter(s, streamId, event, body, attempt - 1, 0, "outcome of the last attempt not recorded");
      return;
    }
    const outcome = await postWebhook({
      url: this.opts.url,
      secret: this.opts.secret,
      body,
      eventId: event.id,
      eventType: event.type,
      timeoutMs: this.opts.timeoutMs,
      stop: this.stopController.signal,
      ...(this.opts.nowMs ? { nowMs: this.opts.nowMs } : {}),
    });
    if (outcome.ok) {
      await this.redis.xack(s.key, WEBHOOK_GROUP, streamId);
      this.opts.logger.debug({ event_id: event.id, attempt, status: outcome.status }, "webhook delivered");
      return;
    }
    if ("stopped" in outcome) return;
    if (attempt >= maxAttempts) {
      await this.moveToDeadLetter(s, streamId, event, body, attempt, outcome.status, outcome.error);
      return;
    }
    const delayMs = retryDelayMs(attempt, this.opts.backoffMs, this.maxBackoffMs);
    this.opts.logger.warn(
      {
        event_id: event.id,
        type: event.type,
        account: event.accountId,
        attempt,
        max_attempts: maxAttempts,
        status: outcome.status,
        error: outcome.error,
        retry_in_ms: delayMs,
      },
      "webhook attempt failed",
    );
    // Within the lease nobody else can have claimed the entry, so its idle time is ours to set: due in delayMs.
    // Past it (a stalled process), it is left as it is: due by its claim time, maybe already claimed elsewhere.
    if (Date.now() - claimedAt < this.leaseMs) {
      await this.redis.call(
        "XCLAIM", s.key, WEBHOOK_GROUP, this.consumer, 0, streamId, "IDLE", this.dueIdleMs(attempt) - delayMs, "JUSTID",
      );
    }
    this.checkAt(s, Date.now() + delayMs);
  }

  private async moveToDeadLetter(
    s: StreamState,
    streamId: string,
    event: Event,
    body: string,
    attempts: number,
    status: number,
    error: string,
  ): Promise<void> {
    const key = deadLetterKey(this.keys.prefix, s.tag);
    const moved = await this.deadLetter(
      s.key, key, WEBHOOK_GROUP, streamId, this.opts.deadLetterMaxLen ?? 0,
      "event_id", event.id, "type", event.type, "account", event.accountId, "stream_id", streamId,
      "attempts", attempts, "last_status", status, "last_error", error, "body", body,
    );
    if (moved !== 1) return;
    this.opts.logger.error(
      {
        event_id: event.id,
        type: event.type,
        account: event.accountId,
        attempts,
        status,
        error,
        dead_letter: key,
      },
      "webhook event dead-lettered after its last attempt",
    );
  }

  /** Logs a Redis or dispatch problem, once until it changes or for a while, so an outage is not a flood. */
  private warn(err: unknown, msg: string): void {
    const text = `${msg}: ${(err as Error)?.message ?? String(err)}`;
    const now = Date.now();
    if (text === this.lastWarning.text && now - this.lastWarning.at < WARN_REPEAT_MS) return;
    this.lastWarning = { text, at: now };
    this.opts.logger.warn({ err }, msg);
  }
}

/** The head of a queue. Its user dequeues it and queues it again at the back when work remains: round robin. */
function first<T>(set: Set<T>): T | undefined {
  for (const v of set) return v;
  return undefined;
}

/** Our group's counters from XINFO GROUPS ([name, v, consumers, v, pending, v, ..., lag, v] per group). */
function groupInfo(
  reply: unknown[],
  name: string,
): { consumers: number; pending: number; lag: number | null } | undefined {
  for (const g of reply) {
    const flat = g as unknown[];
    const f = new Map<string, unknown>();
    for (let i = 0; i + 1 < flat.length; i += 2) f.set(String(flat[i]), flat[i + 1]);
    if (f.get("name") !== name) continue;
    const lag = f.get("lag");
    return {
      consumers: Number(f.get("consumers") ?? 0),
      pending: Number(f.get("pending") ?? 0),
      lag: lag === null || lag === undefined ? null : Number(lag),
    };
  }
  return undefined;
}

