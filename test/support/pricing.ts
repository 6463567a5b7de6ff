import type { Redis } from "ioredis";
import { Meter } from "../../src/metering/index.js";
import { parseCatalog } from "../../src/pricing/catalog.js";
import { CatalogRegistry } from "../../src/pricing/registry.js";
import { CatalogStore } from "../../src/pricing/store.js";
import { Pricer } from "../../src/service/pricing.js";

/** A real Pricer (catalog store, token meter, Redis registry) for handler tests; close() stops the meter. */
export function testPricer(
  redis: Redis,
  prefix: string,
  opts: { catalogSource?: string } = {},
): { pricer: Pricer; catalogs: CatalogStore; meter: Meter; registry: CatalogRegistry; close(): Promise<void> } {
  const catalogs = new CatalogStore(opts.catalogSource ? { initial: parseCatalog(opts.catalogSource) } : {});
  const meter = new Meter({ workers: 1, inlineMaxBytes: 16 * 1024, maxInputBytes: 1 << 20, cacheEntries: 1000 });
  const registry = new CatalogRegistry(redis, prefix, 3_600_000);
  return {
    pricer: new Pricer(catalogs, meter, registry),
    catalogs,
    meter,
    registry,
    close: () => meter.close(),
  };
}
