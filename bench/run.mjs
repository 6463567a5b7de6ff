// npm run bench [-- --quick] [-- --only=1,3]
//
// Starts its own redis-server and creditd (node [flags] dist/main.js, as `npm start` runs it, logging at info to a file),
// drives creditd from other processes (bench/loadgen.mjs: raw HTTP/2 gRPC with pre-encoded frames; h2load for the
// no-op), and prints one table of figures, each next to a baseline measured in the same run, with the ratio and the
// target of issue 6. The table is also written to bench/results/latest.json (and last-full-run.json). See bench/README.md.
//
// Exit status: 1 when a section could not run (a broken bench), 0 otherwise, whatever the figures (CI runs
// `--quick` to catch a bench that broke; it does not judge numbers on a shared machine).
import { writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import os from "node:os";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { RateLimiterRedis } from "rate-limiter-flexible";
import { KeySpace } from "../dist/ledger/keys.js";
import { Ledger } from "../dist/ledger/ledger.js";
import { createRedisClient } from "../dist/redis/connect.js";
import { baselineCycles, ledgerCycle } from "./lib/baselines.mjs";
import { cpuNs, median, memOf, summarize } from "./lib/measure.mjs";
import { h2loadPath, ROOT, runDir, runH2load, runNodeJson, shutdown, startCreditd, startFloorServer, startLoadgen, startRedis, stopping } from "./lib/procs.mjs";
import { fmt, Table } from "./lib/table.mjs";

const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const onlyArg = argv.find((a) => a.startsWith("--only="));
const only = onlyArg ? new Set(onlyArg.slice(7).split(",").map(Number)) : null;
const want = (n) => only === null || only.has(n);
// --main=path/to/main.js runs another build of creditd (an experiment) under the same bench.
const mainArg = argv.find((a) => a.startsWith("--main="))?.slice(7);

// Counts: full run (a few minutes on 2 cores) and --quick (every section, small counts, well under a minute).
const P = quick
  ? {
      accounts: 1000,
      s1: { warm: 300, n: 1000, rounds: 1, conc: 32, fixedS: 1, h2n: 3000, rateCap: 2000 },
      s2: { accounts: 200, cycles: 1000, rounds: 1, conc: 16 },
      s3: { convs: 20, conc: 2, rounds: 1 },
      s4: { rate: 100, windowS: 1, rounds: 1, bigBytes: 1024 * 1024 },
      s5: { cycles: 300 },
      s6: { durS: 0.3, levels: [1, 8, 64, 256], hotDurS: 0.5, hotConc: 64 },
      s7: { durS: 0.5, rounds: 1, conc: 64, keys: 1000 },
    }
  : {
      accounts: 10_000,
      s1: { warm: 3000, n: 10_000, rounds: 3, conc: 32, fixedS: 8, h2n: 40_000, rateCap: 2000 },
      s2: { accounts: 1000, cycles: 15_000, rounds: 3, conc: 16 },
      s3: { convs: 300, conc: 4, rounds: 3 },
      s4: { rate: 200, windowS: 5, rounds: 5, bigBytes: 1024 * 1024 },
      s5: { cycles: 3000 },
      s6: { durS: 3, levels: [1, 8, 64, 256], hotDurS: 4, hotConc: 64 },
      s7: { durS: 4, rounds: 2, conc: 64, keys: 1000 },
    };

const BALANCE = 100_000_000_000_000; // 10^8 credits per account: no run comes near it
const table = new Table();
const details = {};
let failed = false;
let idSeq = 0;
const ids = (tag) => `${tag}${(++idSeq).toString(36)}`; // request ids are claimed across all accounts: never reuse

const us = (ns) => ns / 1000;
const log = (msg) => process.stderr.write(`bench: ${msg}\n`);

// --------------------------------------------------------------------------------------------- helpers

async function info(redis, section) {
  const text = await redis.info(section);
  const out = {};
  for (const line of text.split("\r\n")) {
    const i = line.indexOf(":");
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}
const redisCpuS = async (redis) => {
  const c = await info(redis, "cpu");
  return Number(c.used_cpu_sys) + Number(c.used_cpu_user);
};
const usedMemory = async (redis) => Number((await info(redis, "memory")).used_memory);

/** Top-level command time from INFO commandstats (usec), for the named commands. */
async function commandUsec(redis, names) {
  const s = await info(redis, "commandstats");
  let usec = 0;
  let calls = 0;
  for (const n of names) {
    const v = s[`cmdstat_${n}`];
    if (!v) continue;
    usec += Number(/usec=(\d+)/.exec(v)[1]);
    calls += Number(/calls=(\d+)/.exec(v)[1]);
  }
  return { usec, calls };
}

/** `conc` async workers calling fn(i) until count or duration is reached; returns ops, seconds and latencies (ms). */
async function closedLoop({ conc, count = Infinity, durS = Infinity }, fn) {
  let next = 0;
  const lat = [];
  const t0 = performance.now();
  const until = t0 + durS * 1000;
  await Promise.all(
    Array.from({ length: conc }, async () => {
      while (next < count && performance.now() < until) {
        const i = next++;
        const t = performance.now();
        await fn(i);
        lat.push(performance.now() - t);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  return { ops: lat.length, seconds, perS: lat.length / seconds, latencyMs: summarize(lat) };
}

/** Fails loudly when a load-generator stream had errors. */
function check(res, what) {
  for (const s of res.streams) {
    if (s.errors > 0) throw new Error(`${what}: ${s.errors} failed calls in stream ${s.name}: ${s.errorSamples.join("; ")}`);
  }
  return res;
}

async function section(n, name, fn) {
  if (!want(n) || stopping()) return;
  const t0 = performance.now();
  log(`section ${n}: ${name}`);
  try {
    await fn();
  } catch (err) {
    failed = true;
    log(`section ${n} FAILED: ${err.stack ?? err}`);
    table.add({ section: `${n} ${name}`, figure: `ERROR: ${String(err.message ?? err).split("\n")[0].slice(0, 120)}`, unit: "", value: NaN, baseline: null });
  }
  log(`section ${n} took ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

async function main() {
  // --------------------------------------------------------------------------------------------- start

  const tStart = performance.now();
  const h2load = h2loadPath();
  if (!h2load) log("h2load not found (apt-get install -y nghttp2-client): the h2load rows are skipped");

  const redisServer = await startRedis();
  const admin = new Redis(redisServer.url, { lazyConnect: false });
  const redisVersion = (await info(admin, "server")).redis_version;
  const creditd = await startCreditd({ redisUrl: redisServer.url, ...(mainArg ? { main: mainArg } : {}) });
  log(`redis-server pid ${redisServer.pid} on ${redisServer.port}; creditd pid ${creditd.pid}, gRPC on ${creditd.grpcPort}`);
  const loadgen = startLoadgen();
  const pids = { creditd: creditd.pid, redis: redisServer.pid };
  const job = (streams) => loadgen.run({ port: creditd.grpcPort, pids, streams });
  // Section 4's sender of 1 MB prompts: a background load at the lowest priority, so that building its frames
  // does not take the CPU from the small calls' generator (whose lateness would count as creditd's latency).
  const bigLoadgen = startLoadgen();
  os.setPriority(bigLoadgen.pid, 19);

  // Idle RSS: after startup (tokenizers loaded by the Meter at construction), before any request.
  await sleep(1000);
  const idle = memOf(creditd.pid);
  let peakRss = idle.rss;
  const rssTimer = setInterval(() => {
    const m = memOf(creditd.pid);
    if (m.rss > peakRss) peakRss = m.rss;
  }, 200);
  rssTimer.unref();

  // Accounts: P.accounts granted through AdminService/Grant, plus one hot one.
  const ACCT = { accountPrefix: "acct-", accountCount: P.accounts };
  const HOT = { accountPrefix: "hot-", accountCount: 1 };
  check(await job([{ name: "grant", op: { kind: "grant", accountPrefix: "acct-", idPrefix: "g", amount: BALANCE }, count: P.accounts, concurrency: 64 }]), "grant");
  check(await job([{ name: "grant-hot", op: { kind: "grant", accountPrefix: "hot-", idPrefix: "gh", amount: BALANCE }, count: 1, concurrency: 1 }]), "grant");
  log(`granted ${P.accounts} accounts in ${((performance.now() - tStart) / 1000).toFixed(1)} s since start`);

  // --------------------------------------------------------------------------------------------- 1 server CPU

  await section(1, "server CPU", async () => {
    const { warm, n, rounds, conc } = P.s1;
    const S = (name, op, count, extra = {}) => ({ name, op, count, concurrency: conc, ...extra });
    // Warm-up: JIT, connection, Redis scripts.
    const w = ids("w");
    check(await job([S("warm-noop", { kind: "health" }, warm)]), "warm-up");
    check(await job([S("warm-catalog", { kind: "catalog" }, warm)]), "warm-up");
    check(await job([S("warm-reserve", { kind: "reserve", ...ACCT, idPrefix: w }, warm)]), "warm-up");
    check(await job([S("warm-settle", { kind: "settle", ...ACCT, idPrefix: w }, warm)]), "warm-up");
    // The floor: bench/floor-server.mjs, a grpc-js server of its own whose Hold awaits one minimal hold script
    // (one Redis round trip, no creditd code), against its own Health/Check, at the same rate in the same rounds.
    const floor = await startFloorServer({ redisUrl: redisServer.url });
    const floorJob = (streams) => loadgen.run({ port: floor.grpcPort, pids: { floor: floor.pid }, streams });
    const FLOOR_HOLD = { kind: "path", path: "/bench.Floor/Hold" };
    check(await floorJob([S("warm-floor-noop", { kind: "health" }, warm)]), "warm-up");
    check(await floorJob([S("warm-floor-hold", FLOOR_HOLD, warm)]), "warm-up");

    // Saturation, closed loop (conc calls in flight on one connection): throughput, and CPU per call at that load.
    const sid = ids("s1s");
    const sa = check(await job([S("noop", { kind: "health" }, n)]), "no-op");
    const sb = check(await job([S("reserve", { kind: "reserve", ...ACCT, idPrefix: sid }, n)]), "reserve");
    const sc = check(await job([S("settle", { kind: "settle", ...ACCT, idPrefix: sid }, n)]), "settle");
    details.s1saturation = { noop: sa, reserve: sb, settle: sc };
    const thr = (r) => r.streams[0].callsPerS;
    const cpuPer = (r, who = "creditd") => r.cpu[who].ns / r.streams[0].ok;

    // The figures with targets: CPU per call at one fixed offered load below saturation (open loop, the same rate
    // for the three, so each call finds the server equally busy), in interleaved rounds; the median round is kept.
    const rate = Math.max(50, Math.min(P.s1.rateCap, Math.round((0.5 * Math.min(thr(sb), thr(sc))) / 50) * 50));
    const dur = P.s1.fixedS * 1000;
    const per = { noop: [], catalog: [], reserve: [], settle: [], floorNoop: [], floorHold: [], noopL: [], reserveL: [], settleL: [], noopThr: [], reserveThr: [], settleThr: [] };
    for (let r = 0; r < rounds; r++) {
      const id = ids("s1f");
      const a = check(await job([{ name: "noop", op: { kind: "health" }, rate, durationMs: dur }]), "no-op");
      // creditd's own no-op: GetCatalog goes through the binding, instrument (a log line) and protobuf-es that
      // Reserve and Settle go through, and grpc-health-check's Health/Check does not (see bench/README.md).
      const g = check(await job([{ name: "catalog", op: { kind: "catalog" }, rate, durationMs: dur }]), "GetCatalog");
      const b = check(await job([{ name: "reserve", op: { kind: "reserve", ...ACCT, idPrefix: id }, rate, durationMs: dur }]), "reserve");
      const c = check(await job([{ name: "settle", op: { kind: "settle", ...ACCT, idPrefix: id }, rate, durationMs: dur }]), "settle");
      const fa = check(await floorJob([{ name: "floor-noop", op: { kind: "health" }, rate, durationMs: dur }]), "floor no-op");
      const fb = check(await floorJob([{ name: "floor-hold", op: FLOOR_HOLD, rate, durationMs: dur }]), "floor hold");
      per.floorNoop.push(cpuPer(fa, "floor"));
      per.floorHold.push(cpuPer(fb, "floor"));
      per.noop.push(cpuPer(a));
      per.catalog.push(cpuPer(g));
      per.reserve.push(cpuPer(b));
      per.settle.push(cpuPer(c));
      for (const [k, x] of [["noop", a], ["reserve", b], ["settle", c]]) {
        per[`${k}L`].push(x.streams[0].latencyMs);
        per[`${k}Thr`].push(thr(x));
      }
      details[`s1.round${r}`] = { rate, noop: a, catalog: g, reserve: b, settle: c, floorNoop: fa, floorHold: fb };
    }
    const noop = median(per.noop);
    const sec = "1 server CPU";
    const at = `at ${rate}/s`;
    table.add({ section: sec, figure: `creditd CPU per Reserve RPC ${at}`, unit: "µs", value: us(median(per.reserve)), baseline: us(noop), baselineLabel: "no-op Health/Check", target: { ratioMax: 1.3 } });
    table.add({ section: sec, figure: `creditd CPU per Settle RPC ${at}`, unit: "µs", value: us(median(per.settle)), baseline: us(noop), baselineLabel: "no-op Health/Check", target: { ratioMax: 1.3 } });
    const catalog = median(per.catalog);
    table.add({ section: sec, figure: `creditd CPU per GetCatalog RPC ${at} (creditd's own no-op)`, unit: "µs", value: us(catalog), baseline: us(noop), baselineLabel: "no-op Health/Check" });
    table.add({ section: sec, figure: `creditd CPU per Reserve RPC ${at}, against GetCatalog`, unit: "µs", value: us(median(per.reserve)), baseline: us(catalog), baselineLabel: "GetCatalog" });
    table.add({ section: sec, figure: `creditd CPU per Settle RPC ${at}, against GetCatalog`, unit: "µs", value: us(median(per.settle)), baseline: us(catalog), baselineLabel: "GetCatalog" });
    const floorRatio = median(per.floorHold) / median(per.floorNoop);
    table.add({ section: sec, figure: `floor: one Redis round trip in a bare grpc-js handler ${at} (bench/floor-server.mjs)`, unit: "µs", value: us(median(per.floorHold)), baseline: us(median(per.floorNoop)), baselineLabel: "its Health/Check" });
    // Each process against its own no-op, then creditd's ratio against the floor's: what creditd's own code adds.
    table.add({ section: sec, figure: "Reserve / Health/Check, against the floor's Hold / its Health/Check", unit: "×", value: median(per.reserve) / noop, baseline: floorRatio, baselineLabel: "the floor" });
    table.add({ section: sec, figure: "Settle / Health/Check, against the floor's Hold / its Health/Check", unit: "×", value: median(per.settle) / noop, baseline: floorRatio, baselineLabel: "the floor" });
    const pl = (k, q) => median(per[`${k}L`].map((l) => l[q]));
    table.add({ section: sec, figure: `Reserve throughput ${at} offered`, unit: "req/s", value: median(per.reserveThr), baseline: median(per.noopThr), baselineLabel: "no-op" });
    table.add({ section: sec, figure: `Reserve p50 ${at}`, unit: "ms", value: pl("reserve", "p50"), baseline: pl("noop", "p50"), baselineLabel: "no-op" });
    table.add({ section: sec, figure: `Reserve p99 ${at}`, unit: "ms", value: pl("reserve", "p99"), baseline: pl("noop", "p99"), baselineLabel: "no-op" });
    table.add({ section: sec, figure: `Settle throughput ${at} offered`, unit: "req/s", value: median(per.settleThr), baseline: median(per.noopThr), baselineLabel: "no-op" });
    table.add({ section: sec, figure: `Settle p50 ${at}`, unit: "ms", value: pl("settle", "p50"), baseline: pl("noop", "p50"), baselineLabel: "no-op" });
    table.add({ section: sec, figure: `Settle p99 ${at}`, unit: "ms", value: pl("settle", "p99"), baseline: pl("noop", "p99"), baselineLabel: "no-op" });
    table.add({ section: sec, figure: `Reserve throughput, saturated (${conc} in flight)`, unit: "req/s", value: thr(sb), baseline: thr(sa), baselineLabel: "no-op" });
    table.add({ section: sec, figure: `Settle throughput, saturated (${conc} in flight)`, unit: "req/s", value: thr(sc), baseline: thr(sa), baselineLabel: "no-op" });
    table.add({ section: sec, figure: "creditd CPU per Reserve RPC, saturated", unit: "µs", value: us(cpuPer(sb)), baseline: us(cpuPer(sa)), baselineLabel: "no-op" });
    table.add({ section: sec, figure: "creditd CPU per Settle RPC, saturated", unit: "µs", value: us(cpuPer(sc)), baseline: us(cpuPer(sa)), baselineLabel: "no-op" });

    if (h2load) {
      // The no-op driven by h2load (C, little CPU of its own): same server, same calls in flight on one connection.
      // Next to the Node client's figures it shows how much the load generator itself limits the saturated rows.
      const file = join(runDir, "health.bin");
      writeFileSync(file, Buffer.alloc(5)); // an empty HealthCheckRequest: flag 0, length 0
      const args = (count) => ["-n", String(count), "-c", "1", "-m", String(conc), "-t", "1", "-d", file,
        "-H", "content-type: application/grpc", "-H", "te: trailers", `http://127.0.0.1:${creditd.grpcPort}/grpc.health.v1.Health/Check`];
      await runH2load(args(warm));
      const c0 = cpuNs(creditd.pid);
      const h = await runH2load(args(P.s1.h2n));
      const cpu = cpuNs(creditd.pid) - c0;
      if (h.succeeded !== P.s1.h2n) throw new Error(`h2load: ${h.succeeded} of ${P.s1.h2n} succeeded\n${h.raw}`);
      details.s1h2load = { ...h, raw: undefined, cpuNs: cpu };
      table.add({ section: sec, figure: "no-op throughput, saturated, driven by h2load", unit: "req/s", value: h.reqPerS, baseline: thr(sa), baselineLabel: "Node client" });
      table.add({ section: sec, figure: "creditd CPU per no-op, saturated, driven by h2load", unit: "µs", value: us(cpu / h.succeeded), baseline: us(cpuPer(sa)), baselineLabel: "Node client" });
    }
  });

  // --------------------------------------------------------------------------------------------- 3 token counting

  await section(3, "token counting", async () => {
    const sec = "3 token counting";
    const c = await runNodeJson("count.mjs", quick ? ["--quick"] : []);
    details.s3count = c;
    for (const v of Object.values(c.cases)) {
      table.add({ section: sec, figure: `Meter throughput, ${v.name}`, unit: "MB/s", value: v.meterMBps, baseline: v.rawMBps, baselineLabel: "raw tiktoken", target: { ratioMin: 0.9 } });
    }

    // A 50-turn conversation whose history was counted before (same account: the cache is scoped by account), with
    // one new user message, against a Reserve of one new message. Priced chat Reserves through gRPC.
    const { convs, conc, rounds } = P.s3;
    const base = 1_000_000 + idSeq * 10_000; // conversations never seen before in this run
    const S = (name, op, offset) => ({ name, op: { ...ACCT, model: "gpt-4o-mini", convOffset: offset, ...op }, count: convs, concurrency: conc });
    const warmId = ids("c3w");
    check(await job([{ ...S("warm", { kind: "chat", one: true, idPrefix: warmId }, base + 500_000), count: Math.min(convs, 50) }]), "chat warm-up");
    // Interleaved rounds, each on conversations of its own (primed first), median per call: one round is a fraction
    // of a second, short enough for a burst of the machine's other load to move it by half.
    const longCpu = [];
    const oneCpu = [];
    const longP50 = [];
    const oneP50 = [];
    for (let r = 0; r < rounds; r++) {
      const offset = base + r * 1000;
      check(await job([S("prime", { kind: "chat", messages: 50, idPrefix: ids("c3p") }, offset)]), "chat prime");
      const long = check(await job([S("chat50", { kind: "chat", messages: 51, idPrefix: ids("c3m") }, offset)]), "chat 50 turns");
      const one = check(await job([S("chat1", { kind: "chat", one: true, idPrefix: ids("c3o") }, offset + 200_000)]), "chat 1 message");
      details[`s3chat.round${r}`] = { long, one };
      longCpu.push(long.cpu.creditd.ns / long.streams[0].ok);
      oneCpu.push(one.cpu.creditd.ns / one.streams[0].ok);
      longP50.push(long.streams[0].latencyMs.p50);
      oneP50.push(one.streams[0].latencyMs.p50);
    }
    table.add({ section: sec, figure: "creditd CPU per Reserve, 50-turn chat, history seen", unit: "µs", value: us(median(longCpu)), baseline: us(median(oneCpu)), baselineLabel: "1-message chat Reserve", target: { ratioMax: 2 } });
    table.add({ section: sec, figure: `latency p50, 50-turn chat Reserve (c=${conc})`, unit: "ms", value: median(longP50), baseline: median(oneP50), baselineLabel: "1-message" });
  });

  // --------------------------------------------------------------------------------------------- 4 large prompts

  await section(4, "large prompts", async () => {
    const sec = "4 large prompts";
    const { rate, windowS, rounds, bigBytes } = P.s4;
    const small = (id) => ({ name: "small", op: { kind: "reserve", ...ACCT, idPrefix: id }, rate, durationMs: windowS * 1000 });
    // The 1 MB prompts come from a load generator of their own, as they would from another client of the proxy:
    // building and writing a 1 MB frame blocks the sending process for milliseconds, and in the small calls'
    // process that would delay their timers and count as creditd's latency.
    const big = (id, durationMs) => ({ name: "big", op: { kind: "bigtext", ...ACCT, model: "gpt-4o", bytes: bigBytes, idPrefix: id }, concurrency: 1, durationMs });
    const bigJob = (streams) => bigLoadgen.run({ port: creditd.grpcPort, pids: {}, streams });
    // The first big prompt starts the worker pool; not measured.
    check(await bigJob([{ ...big(ids("b4w")), count: 1 }]), "big warm-up");
    const alone = [];
    const withBig = [];
    const bigLat = [];
    let bigDone = 0;
    for (let r = 0; r < rounds; r++) {
      const a = check(await job([small(ids("s4a"))]), "small alone");
      // The large prompts start first and go on a little past the small calls' window.
      const bigRun = bigJob([big(ids(`b4r${r}`), windowS * 1000 + 500)]);
      await sleep(200);
      const b = check(await job([small(ids("s4b"))]), "small with big");
      const g = check(await bigRun, "big prompts");
      alone.push(a.streams[0].latencyMs.p99);
      withBig.push(b.streams[0].latencyMs.p99);
      bigLat.push(g.streams[0].latencyMs.p50);
      bigDone += g.streams[0].ok;
      details[`s4.round${r}`] = { alone: a, withBig: b, big: g };
    }
    table.add({ section: sec, figure: `p99 small Reserve at ${rate}/s, 1 MB prompts counted meanwhile`, unit: "ms", value: median(withBig), baseline: median(alone), baselineLabel: "no large prompts", target: { ratioMax: 2 } });
    table.add({ section: sec, figure: "1 MB prompt Reserve latency p50 (1 in flight)", unit: "ms", value: median(bigLat), baseline: null, baselineLabel: `${bigDone} counted in ${rounds * (windowS + 0.5)} s` });
  });

  // --------------------------------------------------------------------------------------------- 6 scale

  await section(6, "scale", async () => {
    const sec = "6 scale";
    const { durS, levels, hotDurS, hotConc } = P.s6;
    const dur = durS * 1000;
    for (const c of levels) {
      check(await job([{ name: "warm", op: { kind: "reserve", ...ACCT, idPrefix: ids("s6w") }, concurrency: c, durationMs: Math.min(dur, quick ? 100 : 300) }]), "warm");
      const a = check(await job([{ name: "noop", op: { kind: "health" }, concurrency: c, durationMs: dur }]), `no-op c=${c}`);
      const b = check(await job([{ name: "reserve", op: { kind: "reserve", ...ACCT, idPrefix: ids("s6") }, concurrency: c, durationMs: dur }]), `reserve c=${c}`);
      details[`s6.c${c}`] = { noop: a, reserve: b };
      table.add({ section: sec, figure: `Reserve throughput, ${c} in flight`, unit: "req/s", value: b.streams[0].callsPerS, baseline: a.streams[0].callsPerS, baselineLabel: "no-op" });
      table.add({ section: sec, figure: `Reserve p99, ${c} in flight`, unit: "ms", value: b.streams[0].latencyMs.p99, baseline: a.streams[0].latencyMs.p99, baselineLabel: "no-op" });
    }
    // Hot account: every reserve+settle cycle on one account, against the same load spread over all accounts.
    const cyc = (acct, id) => ({ name: "cycle", op: { kind: "cycle", ...acct, idPrefix: id }, concurrency: hotConc, durationMs: hotDurS * 1000 });
    const spread = check(await job([cyc(ACCT, ids("s6s"))]), "spread cycles");
    const hot = check(await job([cyc(HOT, ids("s6h"))]), "hot cycles");
    details.s6hot = { spread, hot };
    table.add({ section: sec, figure: `reserve+settle cycles/s, 1 hot account (${hotConc} in flight)`, unit: "cycles/s", value: hot.streams[0].unitsPerS, baseline: spread.streams[0].unitsPerS, baselineLabel: `${P.accounts.toLocaleString("en-US")} accounts` });
    table.add({ section: sec, figure: "RPC p99, 1 hot account", unit: "ms", value: hot.streams[0].latencyMs.p99, baseline: spread.streams[0].latencyMs.p99, baselineLabel: `${P.accounts.toLocaleString("en-US")} accounts` });
  });

  clearInterval(rssTimer);
  const loaded = memOf(creditd.pid);

  // --------------------------------------------------------------------------------------------- 2 Redis CPU

  // The Redis-side sections drive Redis from this process: the Ledger layer (dist/ledger) with creditd's own client
  // options, next to a minimal pair of scripts (bench/lua) and rate-limiter-flexible.
  const ledgerClient = createRedisClient({ url: redisServer.url }, { connectionName: "bench-ledger" });
  const ledger = new Ledger(ledgerClient, { keyPrefix: "bl", retentionMs: 86_400_000, ledgerMaxEntries: 100_000 });
  await ledger.loadScripts();
  const grantLedger = async (prefix, n) => {
    await closedLoop({ conc: 32, count: n }, async (i) => {
      const r = await ledger.grant({ accountId: `${prefix}${i}`, grantId: `g${i}`, amountMicros: BALANCE, kind: "topup", priority: 0, expiresAtMs: 0 });
      if (r.status !== "granted" && r.status !== "replayed") throw new Error(`grant: ${r.status}`);
    });
  };
  const cycleOf = (prefix, n, tag) => ledgerCycle(ledger, prefix, n, tag);

  await section(2, "Redis CPU", async () => {
    const sec = "2 Redis CPU";
    const { accounts, cycles, rounds, conc } = P.s2;
    await grantLedger("r2-", accounts);
    const min = new Redis(redisServer.url, { connectionName: "bench-minimal" });
    // The minimal pair (the target's baseline) and the command floor (bench/lib/baselines.mjs).
    const { minCycle, floorCycle, leanCycle } = await baselineCycles(min, { accounts, balance: BALANCE, accountPrefix: "r2-", requestPrefix: ids("r2f") });
    // Warm all four (scripts cached by SHA, JIT).
    await closedLoop({ conc, count: Math.min(cycles, 1000) }, cycleOf("r2-", accounts, ids("r2w")));
    await closedLoop({ conc, count: Math.min(cycles, 1000) }, minCycle);
    await closedLoop({ conc, count: Math.min(cycles, 1000) }, floorCycle);
    await closedLoop({ conc, count: Math.min(cycles, 1000) }, leanCycle);

    const measure = async (fn, cmds) => {
      await admin.config("RESETSTAT");
      const c0 = await redisCpuS(admin);
      const r = await closedLoop({ conc, count: cycles }, fn);
      const c1 = await redisCpuS(admin);
      const stats = await commandUsec(admin, cmds);
      return { cpuUs: ((c1 - c0) * 1e6) / r.ops, cmdUs: stats.usec / r.ops, perS: r.perS, calls: stats.calls };
    };
    const full = [];
    const minimal = [];
    const floor = [];
    const lean = [];
    for (let r = 0; r < rounds; r++) {
      full.push(await measure(cycleOf("r2-", accounts, ids("r2")), ["fcall", "evalsha", "eval", "set", "del"]));
      minimal.push(await measure(minCycle, ["evalsha", "eval"]));
      floor.push(await measure(floorCycle, ["evalsha", "eval"]));
      lean.push(await measure(leanCycle, ["evalsha", "eval"]));
    }
    details.s2 = { full, minimal, floor, lean };
    min.disconnect();
    table.add({ section: sec, figure: "Redis CPU per reserve+settle cycle (INFO cpu)", unit: "µs", value: median(full.map((x) => x.cpuUs)), baseline: median(minimal.map((x) => x.cpuUs)), baselineLabel: "minimal hold+charge scripts", target: { ratioMax: 2 } });
    table.add({ section: sec, figure: "command time per cycle (INFO commandstats)", unit: "µs", value: median(full.map((x) => x.cmdUs)), baseline: median(minimal.map((x) => x.cmdUs)), baselineLabel: "minimal hold+charge scripts", target: { ratioMax: 2 } });
    table.add({ section: sec, figure: "Redis CPU per cycle of the command floor (creditd's commands, no logic)", unit: "µs", value: median(floor.map((x) => x.cpuUs)), baseline: median(minimal.map((x) => x.cpuUs)), baselineLabel: "minimal hold+charge scripts" });
    table.add({ section: sec, figure: "Redis CPU per cycle of the lean pair (the four named features, nothing else)", unit: "µs", value: median(lean.map((x) => x.cpuUs)), baseline: median(minimal.map((x) => x.cpuUs)), baselineLabel: "minimal hold+charge scripts" });
    table.add({ section: sec, figure: "Redis CPU per reserve+settle cycle, against the lean pair", unit: "µs", value: median(full.map((x) => x.cpuUs)), baseline: median(lean.map((x) => x.cpuUs)), baselineLabel: "the four named features alone" });
    table.add({ section: sec, figure: "Redis CPU per reserve+settle cycle, against the command floor", unit: "µs", value: median(full.map((x) => x.cpuUs)), baseline: median(floor.map((x) => x.cpuUs)), baselineLabel: "the same commands without logic" });
  });

  // --------------------------------------------------------------------------------------------- 5 memory

  await section(5, "memory", async () => {
    const sec = "5 memory";
    const base = await runNodeJson("rss-baseline.mjs");
    const MB = 1024 * 1024;
    table.add({ section: sec, figure: "creditd RSS idle (after start, tokenizers loaded)", unit: "MB", value: idle.rss / MB, baseline: base.rss / MB, baselineLabel: "bare node + tiktoken encodings", target: { valueMax: 200 } });
    table.add({ section: sec, figure: "creditd RSS under load (peak sampled; VmHWM " + fmt(loaded.hwm / MB) + " MB)", unit: "MB", value: peakRss / MB, baseline: idle.rss / MB, baselineLabel: "idle" });

    // Redis memory is measured in a database of its own (db 1, emptied before each figure): used_memory deltas in
    // db 0, which holds every record of the run by then, would also carry the growth steps of its big key tables.
    const memClient = createRedisClient({ url: `${redisServer.url}/1` }, { connectionName: "bench-memory" });
    try {
      const memLedger = new Ledger(memClient, { keyPrefix: "creditd", retentionMs: 86_400_000, ledgerMaxEntries: 100_000 });
      await memLedger.loadScripts();
      const n = P.accounts;
      const memUsage = async (k) => Number(await memClient.call("MEMORY", "USAGE", k, "SAMPLES", "0"));

      // Per idle account: one grant each (account hash, grant record, a one-entry ledger stream). An account's events
      // go to its hash slot's stream, shared by every account of the slot (16,384 at most): made first here, as they
      // are in any keyspace of more than a few thousand accounts, so they do not count against the first accounts of
      // their slot.
      const keySpace = new KeySpace("creditd");
      const idleAccounts = async () => {
        await memClient.flushdb();
        const eventStreams = new Set();
        for (let i = 0; i < n; i++) eventStreams.add(keySpace.account(`acct-${i}`).events);
        const ev = memClient.pipeline();
        for (const k of eventStreams) ev.xadd(k, "*", "type", "bench");
        await ev.exec();
        const oneEventStream = await memUsage([...eventStreams][0]);
        const a0 = await usedMemory(memClient);
        await closedLoop({ conc: 32, count: n }, async (i) => {
          const r = await memLedger.grant({ accountId: `acct-${i}`, grantId: `g${i}`, amountMicros: BALANCE, kind: "topup", priority: 0, expiresAtMs: 0 });
          if (r.status !== "granted") throw new Error(`grant: ${r.status}`);
        });
        const a1 = await usedMemory(memClient);
        const keysOfOne = {};
        for (const k of await memClient.keys("creditd:{acct-0}*")) keysOfOne[k] = await memUsage(k);
        await memClient.flushdb();
        return { accounts: n, perAccount: (a1 - a0) / n, keysOfOneAccount: keysOfOne, eventStreams: eventStreams.size, oneEventStream };
      };
      // Per ledger entry: one account's stream before and after `cycles` reserve+settle cycles (2 entries each); and
      // everything a cycle keeps for the retention time.
      const { cycles } = P.s5;
      const ledgerEntries = async () => {
        await memLedger.grant({ accountId: "m5", grantId: "g", amountMicros: BALANCE, kind: "topup", priority: 0, expiresAtMs: 0 });
        const key = memLedger.keys.account("m5").ledger;
        const s0 = await memUsage(key);
        const u0 = await usedMemory(memClient);
        await closedLoop({ conc: 1, count: cycles }, async (i) => {
          const r = await memLedger.reserve({ accountId: "m5", requestId: `m5-${i}`, amountMicros: 1_000_000, ttlMs: 600_000 });
          if (r.status !== "held") throw new Error(`reserve: ${r.status}`);
          const t = await memLedger.settle({ accountId: "m5", requestId: `m5-${i}` }, 600_000);
          if (t.status !== "settled") throw new Error(`settle: ${t.status}`);
        });
        const u1 = await usedMemory(memClient);
        const s1 = await memUsage(key);
        const sample = await memClient.xrevrange(key, "+", "-", "COUNT", 2);
        await memClient.flushdb();
        return { cycles, perEntry: (s1 - s0) / (2 * cycles), perCycle: (u1 - u0) / cycles, lastEntries: sample };
      };

      const idle = await idleAccounts();
      await memClient.flushdb();
      const b0 = await usedMemory(memClient);
      const pipe = memClient.pipeline();
      for (let i = 0; i < n; i++) pipe.hset(`min:{acct-${i}}`, "avail", BALANCE);
      await pipe.exec();
      const b1 = await usedMemory(memClient);
      await memClient.flushdb();
      details.s5accounts = { ...idle, minimalBytes: b1 - b0 };
      table.add({ section: sec, figure: "Redis memory per idle account (granted once; its slot's events stream made before)", unit: "bytes", value: idle.perAccount, baseline: (b1 - b0) / n, baselineLabel: "one-field balance hash" });
      table.add({ section: sec, figure: "Redis memory of a hash slot's events stream with one event (one per slot in use)", unit: "bytes", value: idle.oneEventStream, baseline: null });

      const entries = await ledgerEntries();
      // Against a stream of two-field entries (op, amount).
      const minKey = "minledger:{m5}";
      const p2 = memClient.pipeline();
      for (let i = 0; i < cycles; i++) {
        p2.xadd(minKey, "*", "op", "reserve", "amt", "1000000");
        p2.xadd(minKey, "*", "op", "settle", "amt", "600000");
      }
      await p2.exec();
      const sMin = await memUsage(minKey);
      await memClient.flushdb();
      details.s5ledger = { ...entries, minStreamBytes: sMin };
      table.add({ section: sec, figure: "Redis memory per ledger entry (stream)", unit: "bytes", value: entries.perEntry, baseline: sMin / (2 * cycles), baselineLabel: "two-field stream entry" });
      table.add({ section: sec, figure: "Redis memory per reserve+settle cycle, all records (kept 24 h)", unit: "bytes", value: entries.perCycle, baseline: 2 * entries.perEntry, baselineLabel: "its 2 ledger entries" });

      // Most of an idle account is its ledger stream's first node, which Redis (6.2+) allocates at
      // min(4 KB, stream-node-max-bytes). The same two figures with half that node size, for operators to weigh
      // (README.md, "Redis memory"); the setting is restored after.
      const nodeBytes = (await memClient.config("GET", "stream-node-max-bytes"))[1];
      try {
        await memClient.config("SET", "stream-node-max-bytes", "2048");
        const idle2 = await idleAccounts();
        const entries2 = await ledgerEntries();
        details.s5node2048 = { idle: idle2, entries: entries2 };
        table.add({ section: sec, figure: "Redis memory per idle account, stream-node-max-bytes 2048", unit: "bytes", value: idle2.perAccount, baseline: idle.perAccount, baselineLabel: `at ${nodeBytes}` });
        table.add({ section: sec, figure: "Redis memory per ledger entry, stream-node-max-bytes 2048", unit: "bytes", value: entries2.perEntry, baseline: entries.perEntry, baselineLabel: `at ${nodeBytes}` });
      } finally {
        await memClient.config("SET", "stream-node-max-bytes", nodeBytes);
      }
    } finally {
      memClient.disconnect();
    }
  });

  // --------------------------------------------------------------------------------------------- 7 peer

  await section(7, "peer", async () => {
    const sec = "7 peer";
    const { durS, rounds, conc, keys } = P.s7;
    await grantLedger("p7-", keys);
    const rlClient = new Redis(redisServer.url, { connectionName: "bench-rlf" });
    const rl = new RateLimiterRedis({ storeClient: rlClient, keyPrefix: "rlf", points: 1e12, duration: 3600 });
    const pair = async (i) => {
      await rl.consume(`k${i % keys}`, 1);
      await rl.reward(`k${i % keys}`, 1);
    };
    await closedLoop({ conc, count: 1000 }, pair);
    await closedLoop({ conc, count: 1000 }, cycleOf("p7-", keys, ids("p7w")));
    const run = async (fn) => {
      const c0 = await redisCpuS(admin);
      const r = await closedLoop({ conc, durS }, fn);
      const c1 = await redisCpuS(admin);
      return { perS: r.perS, p99: r.latencyMs.p99, redisUs: ((c1 - c0) * 1e6) / r.ops };
    };
    const peer = [];
    const ours = [];
    for (let r = 0; r < rounds; r++) {
      peer.push(await run(pair));
      ours.push(await run(cycleOf("p7-", keys, ids("p7"))));
    }
    details.s7 = { peer, ours };
    rlClient.disconnect();
    table.add({ section: sec, figure: `creditd Ledger reserve+settle cycles/s (${conc} in flight)`, unit: "/s", value: median(ours.map((x) => x.perS)), baseline: median(peer.map((x) => x.perS)), baselineLabel: "rate-limiter-flexible consume+reward pairs/s" });
    table.add({ section: sec, figure: "Redis CPU per cycle vs per pair", unit: "µs", value: median(ours.map((x) => x.redisUs)), baseline: median(peer.map((x) => x.redisUs)), baselineLabel: "rate-limiter-flexible pair" });
  });

  // --------------------------------------------------------------------------------------------- report

  ledgerClient.disconnect();
  admin.disconnect();
  loadgen.stop();
  bigLoadgen.stop();
  await creditd.stop();
  await shutdown();

  const totalS = (performance.now() - tStart) / 1000;
  const command = `npm run bench${argv.length ? ` -- ${argv.join(" ")}` : ""}`;
  const header = `creditd bench ${quick ? "(--quick) " : ""}${new Date().toISOString()} · ${os.cpus().length} × ${os.cpus()[0]?.model?.trim()} · node ${process.version} · redis ${redisVersion} · ${totalS.toFixed(0)} s`;
  process.stdout.write(`\n${header}\n\n${table.render()}\n\n`);
  const fails = table.rows.filter((r) => r.pass === false).length;
  const passes = table.rows.filter((r) => r.pass === true).length;
  process.stdout.write(`targets: ${passes} pass, ${fails} fail${failed ? " · SOME SECTIONS FAILED TO RUN" : ""}\n`);

  const outDir = join(ROOT, "bench", "results");
  mkdirSync(outDir, { recursive: true });
  // A full run is also kept apart, so that a later --quick or --only run does not overwrite it.
  const files = ["latest.json", ...(!quick && !only && !mainArg ? ["last-full-run.json"] : [])];
  const report = JSON.stringify(
    {
      date: new Date().toISOString(),
      command,
      quick,
      seconds: totalS,
      machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model?.trim(), node: process.version, redis: redisVersion, platform: `${os.type()} ${os.release()}` },
      rows: table.rows.map(({ section, figure, unit, value, baseline, baselineLabel, ratio, targetText, pass }) => ({ section, figure, unit, value, baseline, baselineLabel, ratio, target: targetText || null, pass })),
      markdown: table.markdown(),
      details,
    },
    (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v),
    2,
  );
  for (const file of files) writeFileSync(join(outDir, file), report);
  process.stdout.write(`written: ${files.map((f) => `bench/results/${f}`).join(", ")}\n`);
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  async (err) => {
    log(`FAILED: ${err.stack ?? err}`);
    await shutdown();
    process.exit(1);
  },
);
