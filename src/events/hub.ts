// Live events for WatchEvents: one pub/sub subscription per process, fanned out to every watcher.
//
// The account scripts append each event to the events stream of the account's hash slot and PUBLISH that stream's
// key on `<prefix>:events` (includes/account.lua, save_account). The hub subscribes to that channel on a connection
// of its own (redis.duplicate(): a subscribed connection can run nothing else; on Cluster the duplicate is a
// Cluster whose subscriber connection sits on one node, and a classic PUBLISH reaches every node). A message names
// the stream to read; the hub XREADs it from the last entry it delivered, on the shared client (one read per
// publish and process, however many watchers), decodes each entry once and hands it to the watchers whose filter
// takes it. Reads of one stream run one at a time, so each stream, hence each account, is delivered in order;
// publishes that arrive while a read runs become one more read.
//
// No history: a watcher takes entries written after it started, which is read off Redis's clock (TIME) because
// stream ids are Redis times: the watcher skips entries whose id is at or before that millisecond, and reports
// itself started only once that millisecond is over, so every script that runs after that is delivered. (On a
// Cluster with several nodes, TIME answers from one node; clocks a few ms apart blur the start by as much.)
//
// Memory stays bounded: a watcher holds at most maxBuffered undelivered events. One that falls that far behind (a
// client not reading) is ended with RESOURCE_EXHAUSTED and its buffer dropped; the hub itself holds one read's
// entries at a time.
import { Code, ConnectError } from "@connectrpc/connect";
import { Cluster } from "ioredis";
import type { Logger } from "pino";
import type { Event } from "../gen/creditd/v1/event_service_pb.js";
import type { KeySpace } from "../ledger/keys.js";
import type { RedisClient } from "../redis/connect.js";
import { decodeEvent, slotTagOfEventsKey } from "./event.js";

/** Undelivered events a watcher may hold before it is ended. */
export const DEFAULT_MAX_BUFFERED = 10_000;
/** Entries per XREAD: one read's worth is all the hub holds at a time. */
const READ_COUNT = 500;
/** The largest sequence number of a stream id: `<ms>-MAX_SEQ` is the last id of that millisecond. */
const MAX_SEQ = "18446744073709551615";

export interface WatchFilter {
  /** One account; undefined: every account. */
  accountId?: string | undefined;
  /** Only these event types; undefined or empty: every type. */
  types?: readonly string[] | undefined;
}

export interface EventHubOptions {
  keys: KeySpace;
  logger?: Pick<Logger, "warn" | "debug">;
  /** Undelivered events per watcher before it is ended with RESOURCE_EXHAUSTED. Default 10,000. */
  maxBuffered?: number;
}

/** Where the hub reads one events stream from. */
interface Cursor {
  readonly key: string;
  readonly tag: string;
  /** The last entry read (exclusive start of the next XREAD). */
  lastId: string;
  reading: boolean;
  /** A publish arrived while reading: read once more. */
  again: boolean;
}

/** One SUBSCRIBE on one duplicate connection, from the first watcher to the last. */
interface Subscription {
  readonly conn: RedisClient;
  /** Where a stream first heard of is read from: Redis's time just before subscribing. */
  startMs: number;
  ready: Promise<void>;
  readonly cursors: Map<string, Cursor>;
  closed: boolean;
}

function fieldOf(fields: readonly string[], name: string): string | undefined {
  // Entries start with type, account, t (emit() in includes/account.lua), so this stops early.
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === name) return fields[i + 1];
  }
  return undefined;
}

/** The millisecond part of a stream id. */
function idMs(id: string): number {
  const dash = id.indexOf("-");
  return Number(dash < 0 ? id : id.slice(0, dash));
}

function unavailable(err: unknown): ConnectError {
  const why = err instanceof Error ? err.message : String(err);
  return new ConnectError(`events are unavailable: ${why}`, Code.Unavailable, undefined, undefined, err);
}

export class EventHub {
  private readonly keys: KeySpace;
  private readonly channel: string;
  private readonly logger: Pick<Logger, "warn" | "debug"> | undefined;
  private readonly maxBuffered: number;
  /** Watchers of every account, and watchers by account. */
  private readonly everyAccount = new Set<Watcher>();
  private readonly byAccount = new Map<string, Set<Watcher>>();
  private count = 0;
  private sub: Subscription | undefined;
  private closed = false;

  constructor(
    private readonly redis: RedisClient,
    opts: EventHubOptions,
  ) {
    this.keys = opts.keys;
    this.channel = opts.keys.eventsChannel();
    this.logger = opts.logger;
    this.maxBuffered = opts.maxBuffered ?? DEFAULT_MAX_BUFFERED;
  }

  /**
   * A new watcher: an async iterator of the events written from now on that pass the filter. It ends (done) when
   * `signal` aborts, when return() is called or when the hub closes; it throws RESOURCE_EXHAUSTED when it falls
   * maxBuffered events behind and UNAVAILABLE when the subscription cannot be made.
   */
  watch(filter: WatchFilter, signal?: AbortSignal): Watcher {
    if (this.closed) throw new ConnectError("server shutting down", Code.Unavailable);
    const types = filter.types && filter.types.length > 0 ? new Set(filter.types) : undefined;
    const w = new Watcher(this, filter.accountId, types, this.maxBuffered);
    if (signal?.aborted) {
      w.end();
      return w;
    }
    this.add(w);
    const sub = (this.sub ??= this.subscribe());
    w.started = sub.ready
      .then(() => this.redisTimeMs())
      .then(async (ms) => {
        w.startMs = ms;
        // Report the start once Redis's clock is past that millisecond: every script run from then on writes ids
        // above it (TIME's reply left Redis before the wait began).
        await new Promise((resolve) => setTimeout(resolve, 2));
        w.live = true;
      });
    w.started.catch((err: unknown) => w.end(unavailable(err)));
    if (signal) w.bindSignal(signal);
    return w;
  }

  /** Watchers started (their start time known), for tests and metrics. */
  watching(): number {
    let n = 0;
    for (const w of this.everyAccount) if (w.live) n++;
    for (const set of this.byAccount.values()) for (const w of set) if (w.live) n++;
    return n;
  }

  /** Ends every watcher (done) and drops the subscription; watch() then refuses. */
  async close(): Promise<void> {
    this.closed = true;
    for (const w of [...this.everyAccount, ...[...this.byAccount.values()].flatMap((s) => [...s])]) w.end();
    this.unsubscribe();
  }

  private add(w: Watcher): void {
    if (w.accountId === undefined) {
      this.everyAccount.add(w);
    } else {
      let set = this.byAccount.get(w.accountId);
      if (!set) this.byAccount.set(w.accountId, (set = new Set()));
      set.add(w);
    }
    this.count++;
  }

  /** Called once by a watcher that ended; the last one out drops the subscription. */
  remove(w: Watcher): void {
    const set = w.accountId === undefined ? this.everyAccount : this.byAccount.get(w.accountId);
    if (!set?.delete(w)) return;
    if (set.size === 0 && w.accountId !== undefined) this.byAccount.delete(w.accountId);
    if (--this.count === 0) this.unsubscribe();
  }

  private async redisTimeMs(): Promise<number> {
    const [seconds, micros] = await this.redis.time();
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  }

  private subscribe(): Subscription {
    // Same target and options as the shared client (Cluster.duplicate and Redis.duplicate differ only in what
    // they can override, which is nothing here).
    const conn: RedisClient = this.redis instanceof Cluster ? this.redis.duplicate() : this.redis.duplicate();
    const sub: Subscription = { conn, startMs: 0, ready: Promise.resolve(), cursors: new Map(), closed: false };
    let lastError: string | undefined;
    conn.on("error", (err: Error) => {
      // Without a listener ioredis reports every failed reconnection as an unhandled 'error' event.
      if (err.message !== lastError) this.logger?.warn({ err }, "events subscription: redis connection error");
      lastError = err.message;
    });
    conn.on("message", (channel: string, key: string) => {
      if (channel === this.channel) this.heard(sub, key);
    });
    let connectedOnce = false;
    conn.on("ready", () => {
      lastError = undefined;
      if (!connectedOnce) {
        connectedOnce = true;
        return;
      }
      // After a reconnection what was published meanwhile is lost: once subscribed again, read every stream
      // already known from where it was left. ioredis resubscribes by itself, but only after 'ready', so this
      // SUBSCRIBE (a no-op for Redis when already subscribed) is what tells when the subscription is back. A
      // stream first written during the gap is read, from the subscription's start, at its next publish. (On
      // Cluster the subscriber connection is the Cluster's own and its reconnections are not reported: only a
      // reconnection of the whole Cluster client comes here.)
      conn.subscribe(this.channel).then(
        () => {
          for (const cursor of sub.cursors.values()) void this.read(sub, cursor);
        },
        (err: unknown) => this.logger?.warn({ err }, "events subscription: subscribing again failed"),
      );
    });
    sub.ready = (async () => {
      // Before SUBSCRIBE: a stream first heard of is read from here, so nothing published after the subscription
      // began is missed; entries before a watcher's own start are skipped by the watcher.
      sub.startMs = await this.redisTimeMs();
      await conn.subscribe(this.channel);
    })();
    sub.ready.catch(() => {
      // Each watcher reports it (UNAVAILABLE); the next watcher tries a new subscription.
      if (this.sub === sub) this.unsubscribe();
    });
    return sub;
  }

  private unsubscribe(): void {
    const sub = this.sub;
    if (!sub) return;
    this.sub = undefined;
    sub.closed = true;
    sub.conn.disconnect();
  }

  private heard(sub: Subscription, key: string): void {
    if (sub.closed) return;
    let cursor = sub.cursors.get(key);
    if (!cursor) {
      const tag = slotTagOfEventsKey(key);
      if (tag === null || !key.startsWith(`${this.keys.prefix}:events:`)) return;
      cursor = { key, tag, lastId: `${sub.startMs}-${MAX_SEQ}`, reading: false, again: false };
      sub.cursors.set(key, cursor);
    }
    void this.read(sub, cursor);
  }

  /** Reads the stream to its end, then once more for each burst of publishes heard meanwhile. */
  private async read(sub: Subscription, cursor: Cursor): Promise<void> {
    if (cursor.reading) {
      cursor.again = true;
      return;
    }
    cursor.reading = true;
    try {
      do {
        cursor.again = false;
        for (;;) {
          const reply = await this.redis.xread("COUNT", READ_COUNT, "STREAMS", cursor.key, cursor.lastId);
          if (sub.closed) return;
          const entries = reply?.[0]?.[1] ?? [];
          for (const [id, fields] of entries) {
            cursor.lastId = id;
            this.dispatch(cursor.tag, id, fields);
          }
          if (entries.length < READ_COUNT) break;
        }
      } while (cursor.again && !sub.closed);
    } catch (err) {
      // The cursor stays: the next publish on this stream (or the next reconnection) reads from it again.
      this.logger?.warn({ err, stream: cursor.key }, "reading events failed");
    } finally {
      cursor.reading = false;
    }
  }

  private dispatch(tag: string, id: string, fields: readonly string[]): void {
    const account = fieldOf(fields, "account") ?? "";
    const type = fieldOf(fields, "type") ?? "";
    const ms = idMs(id);
    let event: Event | undefined;
    for (const set of [this.byAccount.get(account), this.everyAccount]) {
      if (set === undefined) continue;
      for (const w of set) {
        if (ms <= w.startMs || (w.types !== undefined && !w.types.has(type))) continue;
        try {
          event ??= decodeEvent(tag, id, fields);
        } catch (err) {
          this.logger?.warn({ err, stream: tag, id }, "undecodable event skipped");
          return;
        }
        w.push(event); // may end w (too far behind), which removes it from the set: safe while iterating
      }
    }
  }
}

/**
 * One watch: an async iterator over its events, with a bounded buffer. Made by EventHub.watch().
 */
export class Watcher implements AsyncIterableIterator<Event> {
  /** Entries at or before this Redis millisecond are history. Infinity until the start is known. */
  startMs = Infinity;
  /** Whether the start is known and past (see EventHub.watch). */
  live = false;
  /** Settles when the watcher started (or could not). */
  started: Promise<void> = Promise.resolve();
  private buffer: Array<Event | undefined> = [];
  private head = 0;
  private waiting: { resolve: (r: IteratorResult<Event>) => void; reject: (err: unknown) => void } | undefined;
  private error: ConnectError | undefined;
  private ended = false;
  private unbind: (() => void) | undefined;

  constructor(
    private readonly hub: EventHub,
    readonly accountId: string | undefined,
    readonly types: ReadonlySet<string> | undefined,
    private readonly maxBuffered: number,
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** Undelivered events held. */
  get buffered(): number {
    return this.buffer.length - this.head;
  }

  push(event: Event): void {
    if (this.ended) return;
    const waiting = this.waiting;
    if (waiting) {
      this.waiting = undefined;
      waiting.resolve({ value: event, done: false });
      return;
    }
    if (this.buffered >= this.maxBuffered) {
      this.end(
        new ConnectError(
          `watcher fell behind: ${this.maxBuffered} events were waiting to be sent, so it was ended; ` +
            "read the stream faster or watch fewer events (account_id, types), then watch again",
          Code.ResourceExhausted,
        ),
      );
      return;
    }
    this.buffer.push(event);
  }

  next(): Promise<IteratorResult<Event>> {
    if (this.head < this.buffer.length) {
      const event = this.buffer[this.head]!;
      this.buffer[this.head++] = undefined;
      if (this.head === this.buffer.length) {
        this.buffer = [];
        this.head = 0;
      } else if (this.head >= 1024 && this.head * 2 >= this.buffer.length) {
        // Drop the delivered half now and then, so a long stream does not keep a growing array.
        this.buffer = this.buffer.slice(this.head);
        this.head = 0;
      }
      return Promise.resolve({ value: event, done: false });
    }
    if (this.error) {
      const err = this.error;
      this.error = undefined;
      return Promise.reject(err);
    }
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    if (this.waiting) return Promise.reject(new Error("Watcher.next() called again before the previous one settled"));
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<Event>> {
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  /** Ends the watcher: done, or `error` for the next next() (the buffer is dropped: the error comes at once). */
  end(error?: ConnectError): void {
    if (this.ended) return;
    this.ended = true;
    this.unbind?.();
    this.unbind = undefined;
    this.hub.remove(this);
    this.buffer = [];
    this.head = 0;
    const waiting = this.waiting;
    this.waiting = undefined;
    if (error === undefined) {
      waiting?.resolve({ value: undefined, done: true });
    } else if (waiting) {
      waiting.reject(error);
    } else {
      this.error = error;
    }
  }

  bindSignal(signal: AbortSignal): void {
    const onAbort = (): void => this.end();
    signal.addEventListener("abort", onAbort, { once: true });
    this.unbind = () => signal.removeEventListener("abort", onAbort);
  }
}
