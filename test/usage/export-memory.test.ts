// ExportUsage (the RPC handler) of 100,000 ledger entries in bounded memory: the peak of the heap it holds while
// exporting them must not grow with the count (compared with exporting the first 10,000 of the same ledger).
//
// The entries are made through the real scripts: 50,000 reserve + settle cycles (each settle with a real
// receipt and quantities, as a priced Settle writes them), pipelined, a block of 1,000 cycles at a time on one
// millisecond of the manual clock.
import v8 from "node:v8";
import vm from "node:vm";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ExportFormat, ExportUsageRequestSchema } from "../../src/gen/creditd/v1/usage_service_pb.js";
import { CSV_COLUMNS } from "../../src/usage/export.js";
import { useTestRedis } from "../support/redis.js";
import { type Harness, bulkCycles, harness } from "./harness.js";

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;

const env = useTestRedis();
const acct = "bulk";
const CYCLES = 50_000;
const BLOCK = 1000;
const MB = 1024 * 1024;
let h: Harness;
let first = 0;

beforeAll(async () => {
  h = harness(env.redis);
  await h.grant(acct, 1_000_000);
  const started = Date.now();
  first = await bulkCycles(h, env.server.url, acct, CYCLES, BLOCK);
  console.log(`made ${CYCLES} reserve+settle cycles in ${Date.now() - started} ms`);
}, 120_000);

afterAll(async () => {
  await h?.close();
});

/**
 * Exports (CSV) and measures: bytes, lines, and the peak heap and RSS above what was in use before. The heap is
 * sampled after a full GC every few chunks: what the export holds on to, not the garbage V8 has yet to collect
 * (which grows and shrinks with the collector's schedule, not with the export: sampled at every chunk without a
 * forced GC, the 100,000 export's heapUsed peaked 70 MB above its start, and fell back at each collection). RSS
 * here starts at the high-water mark the generation left, so test/e2e/usage-export-cli.test.ts measures the peak
 * RSS of the real CLI in a fresh process instead.
 */
async function measure(toMs: number | undefined) {
  gc();
  gc();
  const base = process.memoryUsage();
  let peakHeap = base.heapUsed;
  let peakRss = base.rss;
  let bytes = 0;
  let lines = 0;
  let chunks = 0;
  let last: Uint8Array = new Uint8Array();
  const req = create(ExportUsageRequestSchema, {
    accountId: acct,
    format: ExportFormat.CSV,
    ...(toMs !== undefined ? { filter: { to: timestampFromMs(toMs) } } : {}),
  });
  const started = Date.now();
  for await (const chunk of h.usage.exportUsage(req, { signal: new AbortController().signal })) {
    bytes += chunk.data.length;
    for (const byte of chunk.data) if (byte === 10) lines++;
    last = chunk.data;
    if (++chunks % 5 === 0) {
      gc();
      const m = process.memoryUsage();
      peakHeap = Math.max(peakHeap, m.heapUsed);
      peakRss = Math.max(peakRss, m.rss);
    }
  }
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  return {
    entries: 0,
    bytes,
    lines,
    ms: Date.now() - started,
    heapGrowthMb: (peakHeap - base.heapUsed) / MB,
    rssGrowthMb: (peakRss - base.rss) / MB,
    lastLine: new TextDecoder().decode(last).trimEnd().split("\r\n").pop() ?? "",
  };
}

function memory() {
  const m = process.memoryUsage();
  return { heapUsedMb: m.heapUsed / MB, rssMb: m.rss / MB };
}

it("exports 100,000 ledger entries with the same peak memory as 10,000", async () => {
  const key = h.ledger.keys.account(acct).ledger;
  const total = await env.redis.xlen(key);
  // The grant, one priced generation, then 50,000 cycles.
  expect(total).toBe(1 + 2 + 2 * CYCLES);
  // The first 5 blocks: 5,000 cycles, 10,000 entries (and the 3 before them).
  const small = await measure(first + 5 * 1000);
  small.entries = (await env.redis.xrange(key, "-", String(first + 5 * 1000 - 1))).length;
  const large = await measure(undefined);
  large.entries = total;
  console.log(JSON.stringify({ afterGeneration: memory(), small, large }, null, 1));

  expect(small.entries).toBe(3 + 10_000);
  // A header line, then one line per Settle.
  expect(small.lines).toBe(1 + 1 + 5000);
  expect(large.lines).toBe(1 + 1 + CYCLES);
  expect(large.lastLine.split(",")[CSV_COLUMNS.indexOf("request_id")]).toBe(`b${CYCLES / BLOCK - 1}-${BLOCK - 1}`);
  expect(large.bytes).toBeGreaterThan(9 * small.bytes);

  // Held at any moment: one batch of 1,000 ledger entries with their records (about 500, with receipts) and one
  // chunk of text, whatever the count. Had the export kept anything per record, 10× the entries would show: the
  // extra output alone is large.bytes - small.bytes (6 MB of CSV for 45,000 more rows), the records several times
  // that. So the 100,000 export may hold at most 4 MB more than the 10,000 one (less than that extra output), and
  // under 16 MB in all.
  const extraOutputMb = (large.bytes - small.bytes) / MB;
  expect(extraOutputMb).toBeGreaterThan(5);
  expect(large.heapGrowthMb).toBeLessThan(Math.max(small.heapGrowthMb, 2) + 4);
  expect(large.heapGrowthMb).toBeLessThan(16);
}, 60_000);
