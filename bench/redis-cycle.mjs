// Redis CPU per reserve+settle cycle through the Ledger of two builds, interleaved against one redis-server:
//
//   npm run build && node bench/redis-cycle.mjs --b=bench/results/<other build> [--a=dist] [--cycles=3000] [--runs=3]
//
// A build is a dist/ folder (an experiment: a copy of dist/ under bench/results/, git-ignored, so its imports resolve
// to this repository's node_modules). Each run makes `cycles` reserve+settle cycles over 200 funded accounts with 16
// in flight, after a warm-up, and reads INFO commandstats (time inside commands, per command) and INFO cpu (the whole
// server) around it. Prints every run and the medians per build.
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { Redis } from "ioredis";
import { median } from "./lib/measure.mjs";
import { shutdown, startRedis } from "./lib/procs.mjs";
import { arg } from "./lib/args.mjs";

const builds = { A: arg("a", "dist"), B: arg("b") };
if (!builds.B) {
  console.error("usage: node bench/redis-cycle.mjs --b=<dist folder> [--a=dist] [--cycles=3000] [--runs=3]");
  process.exit(2);
}
const CYCLES = Number(arg("cycles", 3000));
const RUNS = Number(arg("runs", 3));
const ACCOUNTS = 200;

const info = async (r, section) =>
  Object.fromEntries((await r.info(section)).split("\r\n").filter((l) => l.includes(":")).map((l) => l.split(/:(.*)/s).slice(0, 2)));

async function run(dist, redisUrl, tag) {
  const { Ledger } = await import(pathToFileURL(resolve(dist, "ledger/ledger.js")).href);
  const r = new Redis(redisUrl);
  const l = new Ledger(r, { keyPrefix: `c${tag}`, retentionMs: 86_400_000, ledgerMaxEntries: 1000 });
  await l.loadScripts();
  for (let i = 0; i < ACCOUNTS; i++) {
    await l.grant({ accountId: `a${i}`, grantId: `g${i}`, amountMicros: 1e14, kind: "topup", priority: 0, expiresAtMs: 0 });
  }
  const cycles = async (n, prefix) => {
    let k = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (k < n) {
          const i = k++;
          const accountId = `a${i % ACCOUNTS}`;
          const requestId = `${tag}${prefix}${i}`;
          await l.reserve({ accountId, requestId, amountMicros: 5000, ttlMs: 60_000 });
          await l.settle({ accountId, requestId }, 3000);
        }
      }),
    );
  };
  await cycles(500, "w");
  await r.config("RESETSTAT");
  const cpu0 = await info(r, "cpu");
  await cycles(CYCLES, "m");
  const cpu1 = await info(r, "cpu");
  const stats = await info(r, "commandstats");
  r.disconnect();
  const cpu = (c) => Number(c.used_cpu_sys) + Number(c.used_cpu_user);
  let usec = 0;
  const parts = [];
  for (const [k, v] of Object.entries(stats)) {
    const name = k.replace(/^cmdstat_/, "");
    if (name === "info" || name.startsWith("config")) continue;
    const u = Number(/usec=(\d+)/.exec(v)[1]);
    usec += u;
    parts.push(`${name} ${(u / CYCLES).toFixed(1)}`);
  }
  return { cmdUs: usec / CYCLES, cpuUs: ((cpu(cpu1) - cpu(cpu0)) * 1e6) / CYCLES, parts: parts.join(", ") };
}

try {
  const redis = await startRedis();
  const results = { A: [], B: [] };
  for (let i = 0; i < RUNS; i++) {
    for (const b of i % 2 === 0 ? ["A", "B"] : ["B", "A"]) {
      const x = await run(builds[b], redis.url, `${b}${i}`);
      results[b].push(x);
      console.log(`run ${i + 1} ${b}: ${x.cmdUs.toFixed(1)} µs in commands, ${x.cpuUs.toFixed(1)} µs Redis CPU per cycle (${x.parts})`);
    }
  }
  const m = (b, f) => median(results[b].map((x) => x[f]));
  for (const b of ["A", "B"]) {
    console.log(`${b} = ${builds[b]}: median ${m(b, "cmdUs").toFixed(1)} µs in commands, ${m(b, "cpuUs").toFixed(1)} µs Redis CPU per cycle`);
  }
  console.log(`B/A: commands ${(m("B", "cmdUs") / m("A", "cmdUs")).toFixed(2)}, Redis CPU ${(m("B", "cpuUs") / m("A", "cpuUs")).toFixed(2)}`);
} finally {
  await shutdown();
}
