// How long the Meter holds the event loop in one block while a 1 MB prompt is counted on its worker thread: a
// setImmediate chain records the longest gap between two turns of the loop during each countText (distinct texts,
// so each is hashed and sent to the worker). One process, no server; per build given.
//
//   npm run build && node bench/meter-blocking.mjs [--dist=dist,bench/results/base-dist] [--texts=12] [--bytes=1048576]
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { prose } from "./lib/texts.mjs";
import { arg } from "./lib/args.mjs";

const dists = arg("dist", "dist").split(",");
const count = Number(arg("texts", "12"));
const bytes = Number(arg("bytes", String(1 << 20)));
const base = prose(bytes, 11);

for (const dist of dists) {
  const { Meter } = await import(pathToFileURL(resolve(dist, "metering/index.js")).href);
  const meter = new Meter({ workers: 1 });
  await meter.warmup();
  const gaps = [];
  for (let k = 0; k < count; k++) {
    const text = `${dist} ${k} ${base}`;
    let last = performance.now();
    let longest = 0;
    let running = true;
    const tick = () => {
      const now = performance.now();
      longest = Math.max(longest, now - last);
      last = now;
      if (running) setImmediate(tick);
    };
    setImmediate(tick);
    await new Promise((r) => setTimeout(r, 5));
    last = performance.now();
    longest = 0;
    await meter.countText("input.text", text, { encoding: "o200k_base" }, { scope: "bench" });
    running = false;
    gaps.push(longest);
  }
  gaps.sort((a, b) => a - b);
  console.log(`${dist.padEnd(24)} longest event-loop block per ${(bytes / 1048576).toFixed(1)} MB countText: median ${gaps[count >> 1].toFixed(2)} ms, max ${gaps[count - 1].toFixed(2)} ms (${count} texts)`);
  await meter.close();
}
