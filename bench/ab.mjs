// A/B comparison of two builds (or settings) of creditd on this noisy machine: both run at the same time against
// one redis-server, and the same fixed-rate load alternates between them in short rounds (A then B, then B then A),
// so drift and neighbours hit both alike. Prints creditd CPU per call and latency per build, and B/A.
//
//   npm run build && node bench/ab.mjs --b=path/to/other/main.js [--a=dist/main.js] \
//       [--a-env=NAME=value,…] [--b-env=NAME=value,…] [--ops=reserve,settle,noop] [--rate=800 | --conc=32]
//       [--seconds=4] [--rounds=6]
//
// ops: reserve, settle (of what the reserve round held), noop (Health/Check), catalog (CreditService/GetCatalog,
// a no-op through creditd's own binding), chat (a priced Reserve of a 51-message chat whose first 50 messages each
// build counted before) and chat1 (a priced Reserve of one new message).
//
// An experiment build is a copy of dist/ with a change (keep it under bench/results/, which is git-ignored, so that
// its imports resolve to this repository's node_modules).
import { median } from "./lib/measure.mjs";
import { shutdown, startCreditd, startLoadgen, startRedis } from "./lib/procs.mjs";
import { arg } from "./lib/args.mjs";

const envOf = (s) => Object.fromEntries((s ? s.split(",") : []).map((kv) => kv.split(/=(.*)/s).slice(0, 2)));
const ops = arg("ops", "reserve,settle,noop").split(",");
const rate = Number(arg("rate", "800"));
const seconds = Number(arg("seconds", "4"));
const rounds = Number(arg("rounds", "6"));
const conc = arg("conc"); // closed loop with this many calls in flight instead of the fixed rate

try {
  const redis = await startRedis();
  const builds = {
    A: await startCreditd({ redisUrl: redis.url, name: "a", main: arg("a", "dist/main.js"), env: envOf(arg("a-env")) }),
    B: await startCreditd({ redisUrl: redis.url, name: "b", main: arg("b", "dist/main.js"), env: envOf(arg("b-env")) }),
  };
  const loadgen = startLoadgen();
  const ACCT = { accountPrefix: "acct-", accountCount: 1000 };
  const run = (srv, stream) => loadgen.run({ port: srv.grpcPort, pids: { creditd: srv.pid }, streams: [stream] });
  await run(builds.A, { name: "grant", op: { kind: "grant", accountPrefix: "acct-", idPrefix: "g", amount: 1e14 }, count: 1000, concurrency: 32 });
  let seq = 0;
  const CHATS = 200; // conversations, repeated: after priming, every message but the last is in the count cache
  const opOf = (op, id) =>
    ({
      reserve: { kind: "reserve", ...ACCT, idPrefix: id },
      settle: { kind: "settle", ...ACCT, idPrefix: id },
      noop: { kind: "health" },
      catalog: { kind: "catalog" },
      chat: { kind: "chat", ...ACCT, model: "gpt-4o-mini", messages: 51, convModulo: CHATS, idPrefix: `${id}c` },
      chat1: { kind: "chat", ...ACCT, model: "gpt-4o-mini", one: true, idPrefix: `${id}o`, convOffset: 1_000_000 + seq * 100_000 },
    })[op];
  for (const op of ops) if (!opOf(op, "x")) throw new Error(`unknown op ${op}`);
  for (const srv of Object.values(builds)) {
    const id = `w${++seq}`;
    for (const op of ["reserve", "settle", "noop"]) await run(srv, { name: "warm", op: opOf(op, id), count: 3000, concurrency: 16 });
    if (ops.includes("catalog")) await run(srv, { name: "warm", op: opOf("catalog", id), count: 3000, concurrency: 16 });
    if (ops.includes("chat") || ops.includes("chat1")) {
      // The history of every conversation, counted once by this build (the cache is per process and per account).
      await run(srv, { name: "prime", op: { kind: "chat", ...ACCT, model: "gpt-4o-mini", messages: 50, idPrefix: `${id}p` }, count: CHATS, concurrency: 4 });
      for (const op of ["chat", "chat1"]) await run(srv, { name: "warm", op: opOf(op, id), count: 300, concurrency: 4 });
    }
  }
  const res = { A: {}, B: {} };
  for (let r = 0; r < rounds; r++) {
    for (const name of r % 2 === 0 ? ["A", "B"] : ["B", "A"]) {
      const id = `r${++seq}`; // a settle round settles what the reserve round just held
      let held = Infinity; // closed loop: a settle round settles exactly what the reserve round held
      for (const op of ops) {
        const load = conc ? { concurrency: Number(conc) } : { rate };
        const limit = conc && op === "settle" && held !== Infinity ? { count: held } : {};
        const out = await run(builds[name], { name: op, op: opOf(op, id), ...load, durationMs: seconds * 1000, ...limit });
        if (op === "reserve") held = out.streams[0].ok;
        const s = out.streams[0];
        if (s.errors) throw new Error(`${name} ${op}: ${s.errors} failed: ${s.errorSamples.join("; ")}`);
        (res[name][op] ??= []).push({ cpuUs: out.cpu.creditd.ns / 1e3 / s.ok, p50: s.latencyMs.p50, p99: s.latencyMs.p99 });
      }
    }
    process.stderr.write(`round ${r + 1}/${rounds}\n`);
  }
  console.log(`A = ${arg("a", "dist/main.js")} ${arg("a-env", "")}\nB = ${arg("b", "dist/main.js")} ${arg("b-env", "")}`);
  console.log(`${rounds} rounds × ${seconds} s ${conc ? `closed loop, ${conc} in flight` : `at ${rate}/s`}, medians:`);
  for (const op of ops) {
    const m = (n, k) => median(res[n][op].map((x) => x[k]));
    const wins = res.A[op].filter((a, i) => res.B[op][i].cpuUs < a.cpuUs).length;
    console.log(
      `${op.padEnd(8)} CPU/call A ${m("A", "cpuUs").toFixed(0)} µs  B ${m("B", "cpuUs").toFixed(0)} µs  B/A ${(m("B", "cpuUs") / m("A", "cpuUs")).toFixed(2)}` +
        ` (B lower in ${wins}/${rounds} rounds)   p50 A ${m("A", "p50").toFixed(2)} B ${m("B", "p50").toFixed(2)} ms   p99 A ${m("A", "p99").toFixed(1)} B ${m("B", "p99").toFixed(1)} ms`,
    );
  }
  loadgen.stop();
  await shutdown();
} catch (err) {
  process.stderr.write(`ab: ${err.stack ?? err}\n`);
  await shutdown();
  process.exit(1);
}
