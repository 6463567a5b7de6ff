import type { Cluster, Redis } from "ioredis";
import { type Catalog, parseCatalog } from "./catalog.js";

/**
 * Catalog versions in Redis, so a Settle can price real usage with the catalog version its hold was priced with on
 * any replica, after a restart or a reload, as long as a hold of that version can still be settled.
 * Each version is stored once under `<prefix>:catalog:<version>` (its own key: it belongs to no account) and kept
 * for `ttlMs` after it was last used by a Reserve.
 */
export class CatalogRegistry {
  private readonly published = new Map<string, number>();
  private readonly fetched = new Map<string, Catalog>();

  constructor(
    private readonly redis: Redis | Cluster,
    private readonly prefix: string,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  private key(version: string): string {
    return `${this.prefix}:catalog:${version}`;
  }

  /** Stores the catalog's source, refreshing its lifetime at most every quarter of it (not on every Reserve). */
  async publish(catalog: Catalog): Promise<void> {
    const last = this.published.get(catalog.version);
    const now = this.now();
    if (last !== undefined && now - last < this.ttlMs / 4) return;
    await this.redis.set(this.key(catalog.version), catalog.source, "PX", this.ttlMs);
    this.published.set(catalog.version, now);
  }

  /** The catalog of a version published by any replica, or undefined when it is gone. */
  async fetch(version: string): Promise<Catalog | undefined> {
    const known = this.fetched.get(version);
    if (known) return known;
    const source = await this.redis.get(this.key(version));
    if (source === null) return undefined;
    const catalog = parseCatalog(source);
    // A handful of versions are in play at most (a rollout); keep the cache from growing without bound.
    if (this.fetched.size >= 16) this.fetched.delete(this.fetched.keys().next().value as string);
    this.fetched.set(version, catalog);
    return catalog;
  }
}
