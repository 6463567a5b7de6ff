// Per-slot keys (one sweep index, one events stream per hash slot, tagged to live in it) and how a background pass
// finds the ones that exist: the sweeper and the webhook dispatcher walk them the same way, on one Redis or Cluster.
import calculateSlot from "cluster-key-slot";
import type { Redis } from "ioredis";
import type { RedisClient } from "../redis/connect.js";
import { SLOTS } from "./keys.js";
import { isCluster } from "./ledger.js";

const SCAN_COUNT = 1000;

/** Each master with the hash slots it owns (one Redis: all of them). */
export function mastersWithSlots(redis: RedisClient): Array<{ node: Redis; slots: number[] }> {
  const all = Array.from({ length: SLOTS }, (_, slot) => slot);
  if (!isCluster(redis)) return [{ node: redis, slots: all }];
  const byAddress = new Map<string, { node: Redis; slots: number[] }>();
  for (const node of redis.nodes("master")) {
    byAddress.set(`${node.options.host}:${node.options.port}`, { node, slots: [] });
  }
  for (const slot of all) {
    const owner = redis.slots[slot]?.[0];
    if (owner) byAddress.get(owner)?.slots.push(slot);
  }
  return [...byAddress.values()];
}

/** A literal for a SCAN MATCH pattern. */
export function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, "\\$&");
}

/**
 * The per-slot keys to look at on one master. On a small keyspace (at most keysPerSlot keys per slot it owns, by
 * DBSIZE) SCAN MATCH finds the ones that exist, for a few commands; on a bigger one walking every key would cost
 * more than asking after every slot's key, so every slot's key is returned. keysPerSlot ≤ 0 always returns every
 * slot's key, Infinity always scans. Only keys of exactly keyOfSlot's form for a slot this master owns count
 * (another prefix could match the pattern); a key present for the whole walk is found (SCAN's guarantee).
 */
export async function slotKeysOn(
  node: Redis,
  slots: readonly number[],
  opts: {
    keyOfSlot: (slot: number) => string;
    pattern: string;
    type: "zset" | "stream";
    keysPerSlot: number;
    /** Ends the walk early (what was found so far is returned). */
    stopped?: () => boolean;
  },
): Promise<string[]> {
  const everySlot = () => slots.map(opts.keyOfSlot);
  if (opts.keysPerSlot <= 0 || slots.length === 0) return everySlot();
  if (Number.isFinite(opts.keysPerSlot) && (await node.dbsize()) > slots.length * opts.keysPerSlot) return everySlot();
  const owned = new Set(slots);
  const found = new Set<string>(); // SCAN may return a key twice
  let cursor = "0";
  do {
    const [next, keys] = await node.scan(cursor, "MATCH", opts.pattern, "COUNT", SCAN_COUNT, "TYPE", opts.type);
    cursor = next;
    for (const key of keys) {
      const slot = calculateSlot(key);
      if (owned.has(slot) && key === opts.keyOfSlot(slot)) found.add(key);
    }
  } while (cursor !== "0" && !opts.stopped?.());
  return [...found];
}
