// Where creditd's CPU goes on the Reserve/Settle path: starts redis-server and creditd under `node --cpu-prof`,
// drives it from the load generator process, stops it (the profile is written on exit) and prints the functions
// with the most self time, self time by package, and the inclusive time of the main stages.
//
//   npm run build && node bench/profile.mjs [--op=cycle|reserve|settle|health|catalog|chat|big] [--seconds=15] [--conc=32]
//       [--main=path/to/main.js]
//
// The profile is kept as bench/results/creditd-<op>.cpuprofile (open it in Chrome DevTools → Performance, or
// speedscope) with the summary next to it in creditd-<op>.txt.
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { summarizeProfile } from "./lib/cpuprofile.mjs";
import { ROOT, runDir, shutdown, startCreditd, startLoadgen, startRedis } from "./lib/procs.mjs";
import { arg } from "./lib/args.mjs";

const op = arg("op", "cycle");
const seconds = Number(arg("seconds", "15"));
const conc = Number(arg("conc", "32"));
const accounts = 1000;

try {
  const redis = await startRedis();
  const profDir = join(runDir, "prof");
  const creditd = await startCreditd({
    redisUrl: redis.url,
    ...(arg("main") ? { main: arg("main") } : {}),
    nodeArgs: ["--cpu-prof", "--cpu-prof-dir", profDir, "--cpu-prof-interval", "250"],
  });
  const loadgen = startLoadgen();
  const job = (streams) => loadgen.run({ port: creditd.grpcPort, pids: { creditd: creditd.pid }, streams });
  const ACCT = { accountPrefix: "acct-", accountCount: accounts };
  await job([{ name: "grant", op: { kind: "grant", accountPrefix: "acct-", idPrefix: "g", amount: 1e14 }, count: accounts, concurrency: 32 }]);

  const opOf = (id) =>
    ({
      cycle: { kind: "cycle", ...ACCT, idPrefix: id },
      reserve: { kind: "reserve", ...ACCT, idPrefix: id },
      health: { kind: "health" },
      catalog: { kind: "catalog" },
      // 200 conversations of 50 turns + 1 new message, repeated: after the first pass every message is cached, so
      // the profile shows what a Reserve of a long, already-counted chat costs besides counting.
      chat: { kind: "chat", ...ACCT, messages: 51, convModulo: 200, idPrefix: id },
      // distinct 1 MB prompts (counted on the worker thread): what the main thread still does with each
      big: { kind: "bigtext", ...ACCT, model: "gpt-4o", bytes: 1024 * 1024, idPrefix: id },
    })[op];
  let res;
  if (op === "settle") {
    // Reservations to settle first (also profiled, but small next to the settle phase), then the settles.
    const n = Math.round(seconds * 2500);
    await job([{ name: "reserve", op: { kind: "reserve", ...ACCT, idPrefix: "p" }, count: n, concurrency: conc }]);
    res = await job([{ name: "settle", op: { kind: "settle", ...ACCT, idPrefix: "p" }, count: n, concurrency: conc }]);
  } else {
    if (!opOf("x")) throw new Error(`unknown --op=${op}`);
    if (op === "chat") await job([{ name: "prime", op: { kind: "chat", ...ACCT, messages: 50, idPrefix: "c" }, count: 200, concurrency: 4 }]);
    await job([{ name: "warm", op: opOf("w"), durationMs: 2000, concurrency: conc }]);
    res = await job([{ name: op, op: opOf("p"), durationMs: seconds * 1000, concurrency: conc }]);
  }
  const s = res.streams[0];
  if (s.errors) throw new Error(`${s.errors} calls failed: ${s.errorSamples.join("; ")}`);
  loadgen.stop();
  const exit = await creditd.stop();
  if (exit.code !== 0) throw new Error(`creditd exited with ${exit.code ?? exit.signal}`);
  const file = readdirSync(profDir).find((f) => f.endsWith(".cpuprofile"));
  if (!file) throw new Error("no .cpuprofile written");
  const outDir = join(ROOT, "bench", "results");
  mkdirSync(outDir, { recursive: true });
  const kept = join(outDir, `creditd-${op}.cpuprofile`);
  copyFileSync(join(profDir, file), kept);

  const sum = summarizeProfile(kept, 30);
  const lines = [];
  const p = (x) => lines.push(x);
  p(`creditd under ${op} load: ${s.ok} calls in ${s.elapsedS.toFixed(1)} s (${s.callsPerS.toFixed(0)}/s, ${conc} in flight), ` +
    `creditd CPU ${(res.cpu.creditd.ns / 1e6).toFixed(0)} ms = ${(res.cpu.creditd.ns / 1e3 / s.ok).toFixed(0)} µs per call`);
  p(`profile (whole process life, startup included): busy ${sum.busyMs.toFixed(0)} ms of ${sum.totalMs.toFixed(0)} ms sampled`);
  p("\nself time by package / area (% of busy samples):");
  for (const a of sum.areas.slice(0, 16)) p(`  ${a.pctBusy.toFixed(1).padStart(5)}%  ${a.selfMs.toFixed(0).padStart(7)} ms  ${a.area}`);
  p("\ntop self time:");
  for (const r of sum.top) p(`  ${r.pctBusy.toFixed(1).padStart(5)}%  ${r.selfMs.toFixed(0).padStart(7)} ms  ${r.fn}`);
  p("\ninclusive time of stages:");
  const stages = [
    "(garbage collector)", "processTicksAndRejections", "onStreamRead", "Http2Session", "onSessionHeaders",
    "handleUnary", "sendUnaryMessage", "deserializeMessage", "serializeMessage", "fromBinary", "toBinary",
    "reserve dist/service/credit-service.js", "settle dist/service/credit-service.js", "dist/rpc/instrument.js",
    "reserve dist/ledger/ledger.js", "settle dist/ledger/ledger.js", "sendCommand", "evalsha", "fcall", "Redis.set", "returnReply",
    "parseReply", "pino", "asJson", "write ~/sonic-boom", "writeGeneric", "writev", "execute", "uv",
  ];
  for (const st of sum.inclusive(stages)) if (st.inclMs > 0) p(`  ${st.pctBusy.toFixed(1).padStart(5)}%  ${st.inclMs.toFixed(0).padStart(7)} ms  ${st.fn}`);
  const text = lines.join("\n");
  process.stdout.write(`${text}\n\nprofile: bench/results/creditd-${op}.cpuprofile\n`);
  writeFileSync(join(outDir, `creditd-${op}.txt`), `${text}\n`);
  await shutdown();
} catch (err) {
  process.stderr.write(`profile: ${err.stack ?? err}\n`);
  await shutdown();
  process.exit(1);
}
