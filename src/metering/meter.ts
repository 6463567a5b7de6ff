// The Meter: counts prompt and output tokens for pricing without stalling the event loop.
//
// - Size limit first: a text (or a chat's strings, summed) over maxInputBytes UTF-8 bytes is refused with a
//   TextTooLargeError naming the field, before anything is hashed or tokenized.
// - Cache: every string is counted on its own and its count is kept in a bounded LRU keyed by the string's sha256
//   with the encoding and the scope. Only hashes and counts are kept, never the text. A chat is also hashed as a
//   whole, as the sequence of its strings (sequenceDigest), and the sum of their counts is kept under that hash: the
//   next turn of the conversation finds its history there with one lookup (CHAT_LOOKBACK: the same chat without its
//   last 1..6 strings) and counts only the new messages, each through the per-string cache. A repeated system prompt
//   costs one hash. The input's hash comes back with the count (MeterCount.digest), so a caller that needs to
//   identify the request (the idempotency fingerprint) does not hash the text again.
// - Inline or worker: when the strings missing from the cache add up to at most inlineMaxBytes, they are counted on
//   the calling thread (16 KiB is ~3 ms); above that they are counted on a piscina pool of worker threads
//   (1 ≤ threads ≤ cores - 1) with a bounded queue, so the event loop stays free. Identical strings already being
//   counted on a worker are awaited rather than counted twice.
//
// Hashing stays on the calling thread (sha256 of a string runs at ~400 MB/s here, conversion to UTF-8 included), as
// do the size check and the chat validation, which are linear and cheap; a string over 64 Ki characters is hashed in
// slices with the event loop let run between them (digestInSlices).
import * as crypto from "node:crypto";
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { setImmediate as yieldToLoop } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { LRUCache } from "lru-cache";
import { Piscina } from "piscina";
import { planChat, roleTokens } from "./chat.js";
import type { CountTask } from "./count-worker.js";
import { MeterClosedError, MeterOverloadedError, MeteringInputError, TextTooLargeError } from "./errors.js";
import {
  checkSpec,
  countRaw,
  finishCount,
  packCount,
  preloadEncodings,
  unpackCount,
  type Encoding,
  type TokenCount,
  type TokenizerSpec,
} from "./tokenizer.js";

export interface MeterOptions {
  /** Up to this many uncached UTF-8 bytes per call are counted on the calling thread; more go to workers. Default 16 KiB. */
  readonly inlineMaxBytes?: number;
  /** Larger inputs are refused with TextTooLargeError before any counting. Default 4 MiB. */
  readonly maxInputBytes?: number;
  /** Capacity of the count cache (entries: a hash, the scope and a number each, ~200 bytes plus the scope); 0 disables it. Default 50,000. */
  readonly cacheEntries?: number;
  /** Worker threads, clamped to 1..max(1, cores - 1). Default cores - 1 (at least 1). */
  readonly workers?: number;
  /** Batches that may wait for a worker; beyond it counts fail with MeterOverloadedError. Default 64. */
  readonly maxQueue?: number;
  /**
   * Nice increment of the worker threads (0..19): a large count yields the CPU to the RPC thread, so small calls keep
   * their latency while a 1 MB prompt is being counted. Default 10.
   */
  readonly workerNice?: number;
}

export interface CountOptions {
  /**
   * Partition of the cache (e.g. the account id). Whether a count came from the cache tells that the same text was
   * counted before; with a scope, only texts of the same scope can tell that to each other.
   */
  readonly scope?: string;
  /** countChat: the name of the tools field in errors. Default: the messages field with "messages" → "tools". */
  readonly toolsField?: string;
}

export interface MeterCount extends TokenCount {
  /** nothing had to be tokenized: every string's count came from the cache (or there was nothing to count) */
  readonly cached: boolean;
  /**
   * What identifies the input without hashing it again: for a text, digestOf(text) ("" for an empty text); for a
   * chat, sequenceDigest() of the strings its plan counts (planChat(...).texts: tool lines, then each message's
   * content, name, ...), which tells apart any two lists of strings.
   */
  readonly digest: string;
}

/**
 * SHA-256 of a string's UTF-8 bytes (or of bytes), base64url (43 characters): the Meter's hash of every string it
 * counts. crypto.hash (Node ≥ 20.12) hashes in one call, without a Hash object and a call per update.
 */
export const digestOf: (data: string | Uint8Array) => string =
  typeof crypto.hash === "function"
    ? (data) => crypto.hash("sha256", data, "base64url")
    : (data) => crypto.createHash("sha256").update(data).digest("base64url");

/** Strings longer than this (UTF-16 units) are hashed in slices of this size, with the event loop let run between. */
export const HASH_SLICE = 64 * 1024;

/**
 * digestOf(text), computed slice by slice with a turn of the event loop between slices, so that hashing a
 * multi-megabyte prompt (~2.5 ms per MB here, most of it the conversion to UTF-8) does not hold up the small calls
 * in one block. A slice never ends between the two halves of a surrogate pair, so the bytes hashed are exactly
 * the whole string's UTF-8 (a lone surrogate becomes U+FFFD either way).
 */
export async function digestInSlices(text: string, slice = HASH_SLICE): Promise<string> {
  if (text.length <= slice) return digestOf(text);
  const h = crypto.createHash("sha256");
  await updateInSlices(h, text, slice);
  return h.digest("base64url");
}

/** h.update(text) slice by slice, a turn of the event loop between slices, never between a surrogate pair's halves. */
async function updateInSlices(h: crypto.Hash, text: string, slice: number): Promise<void> {
  for (let i = 0; i < text.length; ) {
    if (i > 0) await yieldToLoop();
    let end = Math.min(i + slice, text.length);
    const last = text.charCodeAt(end - 1);
    if (last >= 0xd800 && last <= 0xdbff && end < text.length) end++;
    h.update(text.slice(i, end), "utf8");
    i = end;
  }
}

/**
 * SHA-256 (base64url) of a list of strings: each string's UTF-16 length, ":", then the string, in order. The
 * lengths make it injective (two lists with the same digest are the same list, up to SHA-256 collisions), and as
 * the strings go in one after another, the digest of every prefix of the list comes out of the same pass
 * (sequenceDigests): how the Meter finds the already-counted history of a chat.
 */
export function sequenceDigest(texts: readonly string[]): string {
  const h = crypto.createHash("sha256");
  for (const t of texts) h.update(`${t.length}:${t}`, "utf8");
  return h.digest("base64url");
}

/**
 * sequenceDigest of `texts` and of its prefixes without its last 1..lookback strings (prefixes[j]: without j + 1).
 * A string over HASH_SLICE characters goes in by slices with the event loop let run between (see digestInSlices).
 */
async function sequenceDigests(texts: readonly string[], lookback: number): Promise<{ full: string; prefixes: string[] }> {
  const h = crypto.createHash("sha256");
  const n = texts.length;
  const first = Math.max(0, n - lookback);
  const prefixes: string[] = [];
  for (let i = 0; i < n; i++) {
    if (i >= first && i > 0) prefixes.push(h.copy().digest("base64url"));
    const t = texts[i]!;
    if (t.length <= HASH_SLICE) {
      h.update(`${t.length}:${t}`, "utf8");
      continue;
    }
    h.update(`${t.length}:`, "utf8");
    await yieldToLoop();
    await updateInSlices(h, t, HASH_SLICE);
  }
  return { full: h.digest("base64url"), prefixes: prefixes.reverse() };
}

/** How many strings at the end of a chat may be new for its history to be found in the cache with one lookup. */
export const CHAT_LOOKBACK = 6;

export interface MeterStats {
  /** strings tokenized (cache misses actually counted), inline and on workers */
  tokenizedTexts: number;
  tokenizedBytes: number;
  inlineTexts: number;
  workerTexts: number;
  /** batches sent to the pool */
  workerTasks: number;
  cacheHits: number;
  cacheMisses: number;
  /** strings whose count another call was already computing on a worker */
  inflightShared: number;
  /** chats whose strings were found counted as a whole (all of them, or all but their last 1..CHAT_LOOKBACK) */
  chatHits: number;
}

export const DEFAULT_INLINE_MAX_BYTES = 16 * 1024;
export const DEFAULT_MAX_INPUT_BYTES = 4 * 1024 * 1024;
export const DEFAULT_CACHE_ENTRIES = 50_000;
export const DEFAULT_MAX_QUEUE = 64;
export const DEFAULT_WORKER_NICE = 10;
/** Strings sent to a worker are grouped into tasks of at most this many bytes (a longer string is a task alone). */
export const WORKER_BATCH_BYTES = 1024 * 1024;

/** The worker entry: the compiled count-worker.js next to this file, or the dev bootstrap when running from src/. */
export function workerEntry(): string {
  const compiled = new URL("./count-worker.js", import.meta.url);
  if (existsSync(fileURLToPath(compiled))) return compiled.href;
  const dev = new URL("./count-worker.dev.mjs", import.meta.url);
  if (existsSync(fileURLToPath(dev))) return dev.href;
  throw new Error(`no token-count worker next to ${fileURLToPath(import.meta.url)} (count-worker.js)`);
}

function intOption(name: string, value: number | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min) throw new RangeError(`Meter option ${name} must be an integer ≥ ${min}`);
  return value;
}

/**
 * The end of a cache key: the encoding and the scope. A string's key starts with its digest (43 characters), a
 * chat's with "q" and its sequence digest (44): the first "\0" is at another place, so the two kinds never meet.
 */
function keySuffix(encoding: Encoding, scope: string | undefined): string {
  return `\0${encoding}\0${scope ?? ""}`;
}

interface Miss {
  /** the cache key: the text's digest, the encoding and the scope */
  readonly key: string;
  readonly text: string;
  readonly bytes: number;
}

export class Meter {
  readonly inlineMaxBytes: number;
  readonly maxInputBytes: number;
  readonly cacheEntries: number;
  readonly workers: number;
  readonly workerNice: number;
  readonly maxQueue: number;

  readonly #cache: LRUCache<string, number> | undefined;
  #pool: Piscina<CountTask, number[]> | undefined;
  readonly #inflight = new Map<string, Promise<number>>();
  readonly #stats: MeterStats = {
    tokenizedTexts: 0,
    tokenizedBytes: 0,
    inlineTexts: 0,
    workerTexts: 0,
    workerTasks: 0,
    cacheHits: 0,
    cacheMisses: 0,
    inflightShared: 0,
    chatHits: 0,
  };
  #closed = false;

  constructor(options: MeterOptions = {}) {
    this.inlineMaxBytes = intOption("inlineMaxBytes", options.inlineMaxBytes, DEFAULT_INLINE_MAX_BYTES, 0);
    this.maxInputBytes = intOption("maxInputBytes", options.maxInputBytes, DEFAULT_MAX_INPUT_BYTES, 1);
    this.cacheEntries = intOption("cacheEntries", options.cacheEntries, DEFAULT_CACHE_ENTRIES, 0);
    this.maxQueue = intOption("maxQueue", options.maxQueue, DEFAULT_MAX_QUEUE, 1);
    const maxWorkers = Math.max(1, availableParallelism() - 1);
    this.workers = Math.min(intOption("workers", options.workers, maxWorkers, 1), maxWorkers);
    this.workerNice = Math.min(intOption("workerNice", options.workerNice, DEFAULT_WORKER_NICE, 0), 19);
    this.#cache = this.cacheEntries > 0 ? new LRUCache<string, number>({ max: this.cacheEntries }) : undefined;
    // Load the encodings for inline counts now (blocks ~300 ms once per process, at startup rather than on a
    // request). The workers start on the first large count, or at warmup().
    preloadEncodings();
  }

  /**
   * Starts the worker threads and waits until they have loaded the encodings (~300 ms), so that the first large
   * count does not wait for them. Optional: without it the pool starts on the first large count.
   */
  async warmup(): Promise<void> {
    this.#open();
    await Promise.all(Array.from({ length: this.workers }, () => this.#poolOf().run({ encoding: "o200k_base", texts: [] })));
  }

  /** Counts one text (a prompt, or an output at Settle). `field` names it in errors. */
  async countText(field: string, text: string, spec: TokenizerSpec, options: CountOptions = {}): Promise<MeterCount> {
    this.#open();
    checkSpec(spec);
    if (typeof text !== "string") throw new MeteringInputError(field, "must be a string");
    this.#checkSize(field, [text]);
    const r = await this.#countStrings([text], spec.encoding, options.scope);
    return { ...finishCount(r, spec), cached: r.cached, digest: r.digests[0] ?? "" };
  }

  /**
   * Counts a Chat Completions prompt: messages (and optional tool definitions) as OpenAI counts them, see chat.ts.
   * `field` names the messages in errors (`input.messages[2].role: …`).
   */
  async countChat(
    field: string,
    messages: unknown,
    tools: unknown,
    spec: TokenizerSpec,
    options: CountOptions = {},
  ): Promise<MeterCount> {
    this.#open();
    checkSpec(spec);
    const plan = planChat(field, messages, tools, spec.encoding, options.toolsField);
    const texts = plan.texts;
    this.#checkSize(field, texts);
    const r = await this.#countSequence(texts, spec.encoding, options.scope);
    const raw = { tokens: r.tokens + plan.overhead + roleTokens(plan, spec.encoding), approximate: r.approximate || plan.approximate };
    return { ...finishCount(raw, spec), cached: r.cached, digest: r.digest };
  }

  /** Counters since construction (for tests and metrics). */
  stats(): Readonly<MeterStats> & { cacheSize: number; queued: number } {
    return { ...this.#stats, cacheSize: this.#cache?.size ?? 0, queued: this.#pool?.queueSize ?? 0 };
  }

  /** Stops the workers and forgets the cache. Counts in progress on workers fail; later calls throw MeterClosedError. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#cache?.clear();
    await this.#pool?.destroy();
  }

  #open(): void {
    if (this.#closed) throw new MeterClosedError();
  }

  #poolOf(): Piscina<CountTask, number[]> {
    this.#pool ??= new Piscina<CountTask, number[]>({
      filename: workerEntry(),
      minThreads: this.workers,
      maxThreads: this.workers,
      idleTimeout: 60_000,
      maxQueue: this.maxQueue,
      // piscina lowers each worker thread's priority with @napi-rs/nice (its optional dependency; installed with it).
      niceIncrement: this.workerNice,
    });
    return this.#pool;
  }

  /**
   * Refuses strings over maxInputBytes of UTF-8 in all. A UTF-16 unit is at most 3 UTF-8 bytes, so the exact count
   * is only needed when the lengths come near the limit.
   */
  #checkSize(field: string, texts: readonly string[]): void {
    let units = 0;
    for (const t of texts) units += t.length;
    if (units * 3 <= this.maxInputBytes) return;
    let bytes = 0;
    for (const t of texts) bytes += Buffer.byteLength(t, "utf8");
    if (bytes > this.maxInputBytes) throw new TextTooLargeError(field, bytes, this.maxInputBytes);
  }

  /**
   * Counts a chat's strings: the whole list from the cache (an exact repeat), or the list without its last 1..
   * CHAT_LOOKBACK strings from the cache (the history) and the rest string by string; the sum is then kept under the
   * whole list's digest for the next turn.
   */
  async #countSequence(
    texts: readonly string[],
    encoding: Encoding,
    scope: string | undefined,
  ): Promise<{ tokens: number; approximate: boolean; cached: boolean; digest: string }> {
    const cache = this.#cache;
    const suffix = keySuffix(encoding, scope);
    const { full, prefixes } = await sequenceDigests(texts, cache ? CHAT_LOOKBACK : 0);
    const fullKey = `q${full}${suffix}`;
    let start = 0;
    let known = 0;
    if (cache && texts.length > 0) {
      const whole = cache.get(fullKey);
      if (whole !== undefined) {
        this.#stats.chatHits++;
        const c = unpackCount(whole);
        return { ...c, cached: true, digest: full };
      }
      for (let j = 0; j < prefixes.length; j++) {
        const hit = cache.get(`q${prefixes[j]}${suffix}`);
        if (hit !== undefined) {
          this.#stats.chatHits++;
          start = texts.length - (j + 1);
          known = hit;
          break;
        }
      }
    }
    const rest = await this.#countStrings(start === 0 ? texts : texts.slice(start), encoding, scope);
    const prior = unpackCount(known);
    const sum = { tokens: prior.tokens + rest.tokens, approximate: prior.approximate || rest.approximate };
    if (texts.length > 0) cache?.set(fullKey, packCount(sum));
    return { ...sum, cached: rest.cached, digest: full };
  }

  async #countStrings(
    texts: readonly string[],
    encoding: Encoding,
    scope: string | undefined,
  ): Promise<{ tokens: number; approximate: boolean; cached: boolean; digests: string[] }> {
    let tokens = 0;
    let approximate = false;
    const add = (packed: number) => {
      const c = unpackCount(packed);
      tokens += c.tokens;
      approximate ||= c.approximate;
    };
    const suffix = keySuffix(encoding, scope);
    const misses = new Map<string, Miss>(); // unique by key
    const missKeys: string[] = []; // one per occurrence
    const digests: string[] = []; // of the non-empty strings, in order
    for (let i = 0; i < texts.length; i++) {
      const text = texts[i]!;
      if (text.length === 0) continue;
      const digest = text.length > HASH_SLICE ? await digestInSlices(text) : digestOf(text);
      digests.push(digest);
      const key = digest + suffix;
      const hit = this.#cache?.get(key);
      if (hit !== undefined) {
        this.#stats.cacheHits++;
        add(hit);
        continue;
      }
      this.#stats.cacheMisses++;
      missKeys.push(key);
      if (!misses.has(key)) misses.set(key, { key, text, bytes: Buffer.byteLength(text, "utf8") });
    }
    if (missKeys.length === 0) return { tokens, approximate, cached: true, digests };

    const counted = new Map<string, number>();
    const waits: Promise<void>[] = [];
    const fresh: Miss[] = [];
    let freshBytes = 0;
    for (const miss of misses.values()) {
      const running = this.#inflight.get(miss.key);
      if (running !== undefined) {
        this.#stats.inflightShared++;
        waits.push(running.then((packed) => void counted.set(miss.key, packed)));
      } else {
        fresh.push(miss);
        freshBytes += miss.bytes;
      }
    }

    if (freshBytes <= this.inlineMaxBytes) {
      for (const miss of fresh) counted.set(miss.key, this.#countInline(miss, encoding));
    } else {
      waits.push(...this.#countOnWorkers(fresh, encoding, counted));
    }
    await Promise.all(waits);
    for (const key of missKeys) add(counted.get(key)!);
    return { tokens, approximate, cached: false, digests };
  }

  #countInline(miss: Miss, encoding: Encoding): number {
    const packed = packCount(countRaw(miss.text, encoding));
    this.#stats.tokenizedTexts++;
    this.#stats.tokenizedBytes += miss.bytes;
    this.#stats.inlineTexts++;
    this.#cache?.set(miss.key, packed);
    return packed;
  }

  #countOnWorkers(fresh: readonly Miss[], encoding: Encoding, counted: Map<string, number>): Promise<void>[] {
    const batches: Miss[][] = [];
    let batch: Miss[] = [];
    let batchBytes = 0;
    for (const miss of fresh) {
      if (batch.length > 0 && batchBytes + miss.bytes > WORKER_BATCH_BYTES) {
        batches.push(batch);
        batch = [];
        batchBytes = 0;
      }
      batch.push(miss);
      batchBytes += miss.bytes;
    }
    if (batch.length > 0) batches.push(batch);

    const waits: Promise<void>[] = [];
    for (const b of batches) {
      const run = this.#runTask({ encoding, texts: b.map((m) => m.text) });
      b.forEach((miss, i) => {
        const one = run.then((packed) => {
          const p = packed[i]!;
          this.#cache?.set(miss.key, p);
          return p;
        });
        this.#inflight.set(miss.key, one);
        const forget = () => {
          if (this.#inflight.get(miss.key) === one) this.#inflight.delete(miss.key);
        };
        one.then(forget, forget);
        waits.push(one.then((p) => void counted.set(miss.key, p)));
      });
      run.then(
        () => {
          this.#stats.tokenizedTexts += b.length;
          this.#stats.workerTexts += b.length;
          for (const m of b) this.#stats.tokenizedBytes += m.bytes;
        },
        () => {},
      );
    }
    return waits;
  }

  async #runTask(task: CountTask): Promise<number[]> {
    const pool = this.#poolOf();
    if (pool.queueSize >= this.maxQueue) throw new MeterOverloadedError(pool.queueSize);
    this.#stats.workerTasks++;
    try {
      return await pool.run(task);
    } catch (err) {
      if (err instanceof Error && /queue is at limit/i.test(err.message)) throw new MeterOverloadedError(pool.queueSize);
      if (this.#closed) throw new MeterClosedError();
      throw err;
    }
  }
}
