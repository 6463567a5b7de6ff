// The worker-thread side of the Meter: counts a batch of texts in one encoding. Run by piscina; the Meter loads the
// compiled dist/metering/count-worker.js, or, when it runs from the TypeScript sources (vitest), this file through
// count-worker.dev.mjs. Texts are counted and dropped: nothing is logged or kept.
import { countRaw, isEncoding, packCount, preloadEncodings, type Encoding } from "./tokenizer.js";

export interface CountTask {
  readonly encoding: Encoding;
  readonly texts: readonly string[];
}

// Load both encodings while the pool starts the worker, not on its first task.
preloadEncodings();

/** One packed count (see packCount) per text, in order. */
export default function countBatch(task: CountTask): number[] {
  if (!isEncoding(task.encoding)) throw new RangeError("unknown encoding");
  return task.texts.map((text) => packCount(countRaw(text, task.encoding)));
}
