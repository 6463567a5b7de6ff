// Pricing: the catalog (catalog.ts documents the YAML format), pure pricing (price.ts), plans (plans.ts),
// loading and reloading (store.ts), and the default catalog.
export * from "./catalog.js";
export * from "./decimal.js";
export * from "./default-catalog.js";
export * from "./describe.js";
export * from "./plans.js";
export * from "./price.js";
export * from "./store.js";
