// Worker entry used only when the Meter runs from the TypeScript sources (under vitest), where
// count-worker.js does not exist: registers a loader that compiles this folder's .ts files on the fly (with the
// typescript dev dependency), then hands piscina the real handler of count-worker.ts. A build never uses this file:
// `npm run build` compiles count-worker.ts to dist/metering/count-worker.js, which the Meter loads directly.
import { register } from "node:module";

register("./ts-hooks.mjs", import.meta.url);
const handler = import("./count-worker.ts").then((m) => m.default);

export default async function countBatch(task) {
  return (await handler)(task);
}
