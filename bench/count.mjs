// Section 3a, in a process of its own: token counting throughput of creditd's Meter (dist/metering: size check,
// sha256 cache key, cache lookup, long-run scan, tiktoken, cache insert; texts above 16 KiB go to a worker thread)
// against raw tiktoken (encode_ordinary on the calling thread) on the very same texts. Each round uses texts the Meter
// has not seen (its cache would otherwise answer); within a round the two count each text back to back, alternating
// which goes first, and the median round is kept.
// Prints JSON.
//
//   npm run build && node bench/count.mjs [--quick] [--dist=path/to/dist]
import { performance } from "node:perf_hooks";
import { get_encoding } from "tiktoken";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { prose } from "./lib/texts.mjs";

const quick = process.argv.includes("--quick");
// --dist=path: another build's dist/ (an experiment, see ab.mjs)
const dist = process.argv.find((a) => a.startsWith("--dist="))?.slice(7);
const { Meter } = await import(dist ? pathToFileURL(resolve(dist, "metering/index.js")).href : "../dist/metering/index.js");
const ROUNDS = quick ? 1 : 5;
const CASES = [
  { name: "4 KiB prompts (inline)", bytes: 4 * 1024, texts: quick ? 40 : 200 },
  { name: "256 KiB prompts (worker thread)", bytes: 256 * 1024, texts: quick ? 2 : 8 },
];
const SPEC = { encoding: "o200k_base" };

const enc = get_encoding("o200k_base");
const meter = new Meter({});
await meter.warmup();

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const out = {};
let seed = 1;
for (const c of CASES) {
  const raw = [];
  const metered = [];
  const ratios = [];
  // warm both paths (JIT, worker) on texts not used below
  {
    const warm = Array.from({ length: 3 }, () => prose(c.bytes, 900_000 + seed++));
    for (const t of warm) enc.encode_ordinary(t);
    for (const t of warm) await meter.countText("text", t, SPEC);
  }
  for (let r = 0; r < ROUNDS; r++) {
    const texts = Array.from({ length: c.texts }, () => prose(c.bytes, seed++));
    const bytes = texts.reduce((n, t) => n + Buffer.byteLength(t), 0);
    let tokensRaw = 0;
    let tokensMeter = 0;
    let msRaw = 0;
    let msMeter = 0;
    // Paired and interleaved text by text, alternating which goes first, so the machine's drift hits both alike.
    for (const [i, t] of texts.entries()) {
      for (const which of i % 2 === 0 ? ["raw", "meter"] : ["meter", "raw"]) {
        const t0 = performance.now();
        if (which === "raw") {
          tokensRaw += enc.encode_ordinary(t).length;
          msRaw += performance.now() - t0;
        } else {
          tokensMeter += (await meter.countText("text", t, SPEC)).tokens;
          msMeter += performance.now() - t0;
        }
      }
    }
    if (tokensRaw !== tokensMeter) throw new Error(`${c.name}: token counts differ (${tokensRaw} vs ${tokensMeter})`);
    raw.push(bytes / 1e3 / msRaw);
    metered.push(bytes / 1e3 / msMeter);
    ratios.push(msRaw / msMeter);
  }
  out[c.bytes] = { name: c.name, rawMBps: median(raw), meterMBps: median(metered), ratio: median(ratios), rounds: ROUNDS, texts: c.texts };
}
const stats = meter.stats();
await meter.close();
enc.free();
process.stdout.write(JSON.stringify({ cases: out, meterStats: stats }) + "\n");
