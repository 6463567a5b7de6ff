// Redis instructions per reserve+settle cycle, counted by valgrind (callgrind), for one or more builds (each on a
// top-up account and on a subscribed one), next to the minimal pair of scripts (bench/lua/min-*.lua), the command
// floor and the lean pair in the same redis-server:
//
//   npm run build && node bench/redis-ir.mjs [--dist=dist,bench/results/<other build>] [--cycles=400]
//
// Instruction counts do not move with the machine's load (the same binary, inputs and client give the same count
// within a fraction of a percent), so a change to the Lua scripts can be judged in one run on a noisy host, where
// INFO cpu (bench section 2, bench/redis-cycle.mjs) needs many interleaved runs. They are not CPU time: cache misses
// and the kernel's share of a round trip are not in them; section 2 stays the figure the target is judged on.
// The client makes one call at a time (no pipelining), so each call is one read and one write for Redis in every
// build. --keep=<folder> keeps the dumps (one per measurement, in order) for callgrind_annotate.
// redis-server runs under valgrind, ~50× slower: the default is a few hundred cycles.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { pathToFileURL } from "node:url";
import { Redis } from "ioredis";
import { findFreePort } from "../dist/redis/redis-process.js";
import { arg } from "./lib/args.mjs";
import { baselineCycles, ledgerCycle } from "./lib/baselines.mjs";

const builds = arg("dist", "dist").split(",");
const CYCLES = Number(arg("cycles", 400));
const ACCOUNTS = 50;
const BALANCE = 1e14;

for (const tool of ["valgrind", "callgrind_control"]) {
  try {
    execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
  } catch {
    console.error(`bench/redis-ir.mjs needs ${tool} (apt-get install -y valgrind)`);
    process.exit(2);
  }
}
const dir = mkdtempSync(join(tmpdir(), "creditd-ir-"));
const port = await findFreePort();
const server = spawn("valgrind", ["--tool=callgrind", `--callgrind-out-file=${dir}/cg.out`, "redis-server", "--port", String(port),
  "--save", "", "--appendonly", "no", "--dir", dir, "--loglevel", "warning"], { stdio: ["ignore", "ignore", "pipe"] });
let serverErr = "";
server.stderr.on("data", (d) => (serverErr += d));
const KEEP = arg("keep"); // a folder to keep the callgrind dumps in (for callgrind_annotate)
const stop = () => { try { server.kill("SIGKILL"); } catch {} if (KEEP) execFileSync("cp", ["-r", dir, KEEP]); rmSync(dir, { recursive: true, force: true }); };
process.on("exit", stop);

for (let i = 0; ; i++) {
  const up = await new Promise((ok) => {
    const c = connect(port, "127.0.0.1", () => { c.destroy(); ok(true); });
    c.on("error", () => ok(false));
  });
  if (up) break;
  if (i > 150 || server.exitCode !== null) throw new Error(`redis-server under valgrind did not start:\n${serverErr}`);
  await sleep(200);
}
const r = new Redis({ port });

/** Instructions Redis ran for fn(i), i < n, per call of fn: counters zeroed before, dumped after. */
let dumps = 0;
async function irPer(n, fn) {
  execFileSync("callgrind_control", ["-z", String(server.pid)], { stdio: "ignore" });
  for (let i = 0; i < n; i++) await fn(i);
  execFileSync("callgrind_control", ["-d", String(server.pid)], { stdio: "ignore" });
  dumps++;
  const file = readdirSync(dir).filter((f) => f.startsWith("cg.out.")).map((f) => join(dir, f)).find((f) => f.endsWith(`.${dumps}`));
  const total = /^(?:summary|totals): (\d+)/m.exec(readFileSync(file, "utf8"));
  return Number(total[1]) / n;
}

const { minCycle, floorCycle, leanCycle } = await baselineCycles(r, { accounts: ACCOUNTS, balance: BALANCE, accountPrefix: "a", requestPrefix: "f" });

const rows = [];
await minCycle(0); await minCycle(1);
rows.push(["minimal hold+charge scripts", await irPer(CYCLES, minCycle)]);
await floorCycle(0);
rows.push(["command floor (creditd's commands, no logic)", await irPer(CYCLES, floorCycle)]);
await leanCycle(0);
rows.push(["lean pair (the four named features, nothing else)", await irPer(CYCLES, leanCycle)]);
// Two kinds of account per build: a top-up only (one bucket: the bench's accounts), and a subscribed one (a plan's
// monthly allowance with low-credit warnings, plus a top-up pack: two buckets and the subscription's fields).
const PLAN = { planId: "pro", period: "month", seats: undefined, creditsMicros: BALANCE, creditsPerSeatMicros: 0, unlimited: false,
  memberCapMicros: 0, addons: [], status: "active", anchorMs: undefined, trialCreditsMicros: 0, trialMs: 0, warnAtPercent: [20, 5] };
for (const [b, dist] of builds.entries()) {
  const { Ledger } = await import(pathToFileURL(resolve(dist, "ledger/ledger.js")).href);
  const l = new Ledger(r, { keyPrefix: `b${b}`, retentionMs: 86_400_000, ledgerMaxEntries: 100_000 });
  await l.loadScripts();
  for (let i = 0; i < ACCOUNTS; i++) {
    await l.grant({ accountId: `a${i}`, grantId: `g${i}`, amountMicros: BALANCE, kind: "topup", priority: 0, expiresAtMs: 0 });
    await l.setSubscription(`s${i}`, PLAN);
    await l.grant({ accountId: `s${i}`, grantId: `g${i}`, amountMicros: BALANCE, kind: "topup", priority: 0, expiresAtMs: 0 });
  }
  const cycle = (prefix, tag) => ledgerCycle(l, prefix, ACCOUNTS, tag);
  for (const [prefix, what] of [["a", "top-up account"], ["s", "subscribed account"]]) {
    for (let i = 0; i < 2 * ACCOUNTS; i++) await cycle(prefix, `warm${prefix}`)(i);
    rows.push([`reserve+settle through ${dist}, ${what}`, await irPer(CYCLES, cycle(prefix, `m${prefix}`))]);
  }
}
rows.push(["minimal hold+charge scripts (again)", await irPer(CYCLES, minCycle)]);
const base = (rows[0][1] + rows.at(-1)[1]) / 2;
console.log(`redis-server instructions per cycle (callgrind), ${CYCLES} cycles each, one call at a time`);
for (const [name, ir] of rows) console.log(`${name.padEnd(72)} ${Math.round(ir).toLocaleString("en-US").padStart(10)}  ${(ir / base).toFixed(2)}×`);
r.disconnect();
process.exit(0);
