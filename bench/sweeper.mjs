// What one background sweeper pass costs, by how it finds the sweep indexes to read: reading every slot's index
// (16,384 ZRANGEBYSCOREs in pipelines of 1,024) against walking the keyspace with SCAN MATCH for the indexes that
// exist, at several keyspace sizes. Measures Redis CPU (INFO cpu) and this process's CPU (the sweeper runs here,
// with creditd's Ledger and client options) per pass, and the longest the pass kept this process's event loop from
// anything else (monitorEventLoopDelay, 1 ms resolution: what an RPC arriving during the pass would wait); the median
// of the passes is printed.
//
//   npm run build && node bench/sweeper.mjs [--sizes=0,100000,1000000] [--holds=100] [--passes=5] [--dist=path/to/dist]
//
// Nothing is due during the passes (the holds last an hour), so a pass is only finding and reading indexes: the
// part of the sweeper's cost that does not depend on how many holds expire.
import { resolve } from "node:path";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { Redis } from "ioredis";
import { median } from "./lib/measure.mjs";
import { shutdown, startRedis } from "./lib/procs.mjs";
import { arg } from "./lib/args.mjs";

const sizes = arg("sizes", "0,100000,1000000").split(",").map(Number);
const holds = Number(arg("holds", "100"));
const passes = Number(arg("passes", "5"));

// --dist=path: another build's dist/ (an experiment, see ab.mjs)
const dist = arg("dist", undefined);
const load = (mod) => import(dist ? pathToFileURL(resolve(dist, mod)).href : `../dist/${mod}`);
const { Ledger } = await load("ledger/ledger.js");
const { Sweeper } = await load("ledger/sweeper.js");
const { createRedisClient } = await load("redis/connect.js");

const quiet = { warn: () => {}, debug: () => {} };

async function redisCpuUs(admin) {
  const text = await admin.info("cpu");
  const v = (k) => Number(new RegExp(`^${k}:([\\d.]+)`, "m").exec(text)[1]);
  return (v("used_cpu_user") + v("used_cpu_sys")) * 1e6;
}

try {
  const server = await startRedis();
  const admin = new Redis(server.url);
  const client = createRedisClient({ url: server.url }, { connectionName: "bench-sweeper" });
  const ledger = new Ledger(client, { keyPrefix: "sw", retentionMs: 86_400_000, ledgerMaxEntries: 1000 });
  await ledger.loadScripts();
  // Accounts with a live hold each: their slots' indexes exist.
  for (let i = 0; i < holds; i++) {
    await ledger.grant({ accountId: `a${i}`, grantId: "g", amountMicros: 1e12, kind: "topup", priority: 0, expiresAtMs: 0 });
    const r = await ledger.reserve({ accountId: `a${i}`, requestId: `a${i}-r`, amountMicros: 1e6, ttlMs: 3_600_000 });
    if (r.status !== "held") throw new Error(`reserve: ${r.status}`);
  }
  const sweepers = {
    "every slot": new Sweeper(ledger, { intervalMs: 0, logger: quiet, scanKeysPerSlot: 0 }),
    "SCAN": new Sweeper(ledger, { intervalMs: 0, logger: quiet, scanKeysPerSlot: Infinity }),
  };
  let filled = 0;
  const rows = [];
  for (const size of sizes) {
    // Filler keys up to `size` keys in all (strings, as idempotency records are).
    while (filled < size) {
      const p = admin.pipeline();
      for (let j = 0; j < 10_000 && filled < size; j++, filled++) p.set(`fill:{${filled}}`, "x");
      await p.exec();
    }
    const dbsize = await admin.dbsize();
    for (const [name, sweeper] of Object.entries(sweepers)) {
      await sweeper.sweepOnce(); // warm
      const redisUs = [];
      const nodeUs = [];
      const wallMs = [];
      const blockMs = [];
      for (let i = 0; i < passes; i++) {
        const loop = monitorEventLoopDelay({ resolution: 1 });
        loop.enable();
        const r0 = await redisCpuUs(admin);
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        const n = await sweeper.sweepOnce();
        wallMs.push(performance.now() - t0);
        loop.disable();
        blockMs.push(loop.max / 1e6);
        const c = process.cpuUsage(c0);
        nodeUs.push(c.user + c.system);
        redisUs.push((await redisCpuUs(admin)) - r0);
        if (n !== 0) throw new Error(`a pass touched ${n} accounts; none is due`);
      }
      rows.push({ keys: dbsize, mode: name, redisMs: median(redisUs) / 1e3, nodeMs: median(nodeUs) / 1e3, wallMs: median(wallMs), blockMs: median(blockMs) });
    }
  }
  console.log(`sweeper pass, ${holds} accounts with a hold, median of ${passes} passes`);
  console.log("| keys in Redis | how indexes are found | Redis CPU per pass | sweeper-process CPU per pass | wall time | longest block |");
  console.log("| ---: | --- | ---: | ---: | ---: | ---: |");
  for (const r of rows) {
    console.log(`| ${r.keys.toLocaleString("en-US")} | ${r.mode} | ${r.redisMs.toFixed(1)} ms | ${r.nodeMs.toFixed(1)} ms | ${r.wallMs.toFixed(0)} ms | ${r.blockMs.toFixed(1)} ms |`);
  }
  admin.disconnect();
  client.disconnect();
  await shutdown();
} catch (err) {
  process.stderr.write(`sweeper bench: ${err.stack ?? err}\n`);
  await shutdown();
  process.exit(1);
}
