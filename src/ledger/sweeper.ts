import type { Logger } from "pino";
import type { Ledger } from "./ledger.js";
import { globEscape, mastersWithSlots, slotKeysOn } from "./slot-keys.js";

/** How many sweep indexes one pipeline reads, and how many due accounts one index yields per pass. */
const SLOTS_PER_PIPELINE = 1024;
const ACCOUNTS_PER_SLOT = 100;
/**
 * A master whose keyspace holds at most this many keys per slot it owns is walked with SCAN to find the sweep
 * indexes that exist; a bigger one gets the read of every slot's index. Measured with bench/sweeper.mjs: SCAN MATCH
 * costs Redis 0.4-0.6 µs per key it walks and creditd ~0.06 µs; reading an index costs Redis ~1.3 µs and creditd
 * ~7 µs (16,384 reads: ~20 ms of Redis and ~110 ms of creditd CPU per pass, whatever the keyspace). At 4 keys per
 * slot a SCAN pass costs Redis at most about twice a pass of reads, and creditd a tenth; Redis, shared by every
 * replica, is the one to spare.
 */
export const SCAN_KEYS_PER_SLOT = 4;

/**
 * Releases the holds of accounts nobody touches any more. Every script already releases an account's expired holds
 * when it touches the account; this covers the rest. Scripts keep one sweep index per hash slot (a sorted set of
 * accounts by earliest hold deadline, tagged to live in that slot, deleted by Redis when its last account leaves),
 * so the sweeper reads each master's own indexes and touches the due accounts with the balance script. It works the
 * same on one Redis and on Cluster, and several replicas sweeping at once only repeat harmless touches.
 *
 * Which indexes it reads: on a small keyspace (at most SCAN_KEYS_PER_SLOT keys per slot a master owns, DBSIZE) it
 * finds the ones that exist with SCAN MATCH, so a pass over a Redis with a few holds costs a few commands instead of
 * 16,384 reads; on a bigger one walking every key would cost more than reading every slot's index, so it does that.
 * Either way an index that exists for a whole pass is read in that pass (SCAN returns every key present from its
 * start to its end), so every due hold is released within a pass or two.
 */
export class Sweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly pattern: string;

  constructor(
    private readonly ledger: Ledger,
    private readonly opts: {
      intervalMs: number;
      logger: Pick<Logger, "warn" | "debug">;
      nowMs?: () => number;
      /** Overrides SCAN_KEYS_PER_SLOT (tests: 0 reads every slot's index, Infinity always scans). */
      scanKeysPerSlot?: number;
    },
  ) {
    this.pattern = `${globEscape(ledger.keys.prefix)}:sweep:{*}`;
  }

  start(): void {
    if (this.opts.intervalMs <= 0 || this.timer) return;
    // Jitter the first pass so replicas started together do not sweep in step.
    const first = Math.floor(Math.random() * this.opts.intervalMs);
    const tick = () => {
      this.running = this.sweepOnce()
        .then((n) => {
          if (n > 0) this.opts.logger.debug({ accounts: n }, "sweeper released expired holds");
        })
        .catch((err: unknown) => this.opts.logger.warn({ err }, "sweep failed; retrying next interval"))
        .finally(() => {
          this.running = undefined;
          if (this.timer) this.timer = setTimeout(tick, this.opts.intervalMs).unref();
        });
    };
    this.timer = setTimeout(tick, first).unref();
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One pass over every master's sweep indexes; returns how many accounts were touched. */
  async sweepOnce(): Promise<number> {
    const now = this.opts.nowMs?.() ?? Date.now();
    let touched = 0;
    for (const { node, slots } of mastersWithSlots(this.ledger.redis)) {
      // The indexes SCAN finds when the master's keyspace is small, else every slot's.
      const indexes = await slotKeysOn(node, slots, {
        keyOfSlot: (slot) => this.ledger.keys.sweepIndexOfSlot(slot),
        pattern: this.pattern,
        type: "zset",
        keysPerSlot: this.opts.scanKeysPerSlot ?? SCAN_KEYS_PER_SLOT,
      });
      for (let i = 0; i < indexes.length; i += SLOTS_PER_PIPELINE) {
        const pipeline = node.pipeline();
        for (const key of indexes.slice(i, i + SLOTS_PER_PIPELINE)) {
          pipeline.zrangebyscore(key, "-inf", now, "LIMIT", 0, ACCOUNTS_PER_SLOT);
        }
        const replies = (await pipeline.exec()) ?? [];
        // An error (a slot that moved to another master since) is skipped: its new owner's pass reads it.
        const due = replies.flatMap(([err, accounts]) => (err ? [] : (accounts as string[])));
        // balance() runs the touch on the account's own slot, wherever Cluster has it now.
        await Promise.all(due.map((accountId) => this.ledger.balance(accountId)));
        touched += due.length;
      }
    }
    return touched;
  }
}
