import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { SLOTS } from "./keys.js";
import { type Ledger, isCluster } from "./ledger.js";

/** How many sweep indexes one pipeline reads, and how many due accounts one index yields per pass. */
const SLOTS_PER_PIPELINE = 1024;
const ACCOUNTS_PER_SLOT = 100;

/**
 * Releases the holds of accounts nobody touches any more. Every script already releases an account's expired holds
 * when it touches the account; this covers the rest. Scripts keep one sweep index per hash slot (a sorted set of
 * accounts by earliest hold deadline, tagged to live in that slot), so the sweeper reads each master's own slots and
 * touches the due accounts with the balance script. It works the same on one Redis and on Cluster, and several
 * replicas sweeping at once only repeat harmless touches.
 */
export class Sweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly ledger: Ledger,
    private readonly opts: { intervalMs: number; logger: Pick<Logger, "warn" | "debug">; nowMs?: () => number },
  ) {}

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

  /** One pass over every slot's index; returns how many accounts were touched. */
  async sweepOnce(): Promise<number> {
    const now = this.opts.nowMs?.() ?? Date.now();
    let touched = 0;
    for (const { node, slots } of this.slotOwners()) {
      for (let i = 0; i < slots.length; i += SLOTS_PER_PIPELINE) {
        const pipeline = node.pipeline();
        for (const slot of slots.slice(i, i + SLOTS_PER_PIPELINE)) {
          pipeline.zrangebyscore(this.ledger.keys.sweepIndexOfSlot(slot), "-inf", now, "LIMIT", 0, ACCOUNTS_PER_SLOT);
        }
        const replies = (await pipeline.exec()) ?? [];
        const due = replies.flatMap(([err, accounts]) => (err ? [] : (accounts as string[])));
        // balance() runs the touch on the account's own slot, wherever Cluster has it now.
        await Promise.all(due.map((accountId) => this.ledger.balance(accountId)));
        touched += due.length;
      }
    }
    return touched;
  }

  private slotOwners(): Array<{ node: Redis; slots: number[] }> {
    const redis = this.ledger.redis;
    const all = Array.from({ length: SLOTS }, (_, s) => s);
    if (!isCluster(redis)) return [{ node: redis, slots: all }];
    const byKey = new Map<string, { node: Redis; slots: number[] }>();
    for (const node of redis.nodes("master")) {
      byKey.set(`${node.options.host}:${node.options.port}`, { node, slots: [] });
    }
    all.forEach((slot) => {
      const owner = redis.slots[slot]?.[0];
      if (owner) byKey.get(owner)?.slots.push(slot);
    });
    return [...byKey.values()];
  }
}
