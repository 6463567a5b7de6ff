// The bench's child processes: redis-server, creditd (node [flags] dist/main.js), the load generator, and the cleanup
// that stops every one of them on exit, on an error and on Ctrl-C.
import { execFileSync, fork, spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { findFreePort, startRedisServer } from "../../dist/redis/redis-process.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const children = new Set(); // ChildProcess objects to kill on the way out
const cleanups = []; // async cleanups (redis stop, temp dirs)

export const runDir = mkdtempSync(join(tmpdir(), "creditd-bench-"));

function killAll(signal) {
  for (const child of children) {
    try {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    } catch {
      // gone
    }
  }
}

let exiting = false;
/** True once a signal or shutdown() began stopping everything: no new work should start. */
export const stopping = () => exiting;
/** Stops every child (creditd first, then the load generator, then Redis) and removes the run folder. */
export async function shutdown() {
  if (exiting) return;
  exiting = true;
  killAll("SIGTERM");
  const deadline = Date.now() + 5000;
  while ([...children].some((c) => c.exitCode === null && c.signalCode === null) && Date.now() < deadline) await sleep(25);
  killAll("SIGKILL");
  for (const f of cleanups.reverse()) await f().catch(() => {});
  rmSync(runDir, { recursive: true, force: true });
}

process.on("exit", () => {
  // Last resort (process.exit from anywhere): synchronous kills only.
  killAll("SIGKILL");
  try {
    rmSync(runDir, { recursive: true, force: true });
  } catch {
    // best effort
  }
});
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    process.stderr.write(`\nbench: ${sig}, stopping redis-server and creditd\n`);
    void shutdown().finally(() => process.exit(130));
  });
}

export async function startRedis() {
  const redis = await startRedisServer({ extraArgs: ["--maxmemory", "0", "--loglevel", "warning"] });
  cleanups.push(() => redis.stop());
  return redis;
}

/**
 * The Node flags creditd runs with in production: those of `npm start` (package.json; deploy/sidecar.yaml has the same,
 * checked by test/e2e/node-flags.test.ts). BENCH_CREDITD_NODE_FLAGS replaces them for an A/B run ("" = none).
 */
export function creditdNodeFlags() {
  const override = process.env.BENCH_CREDITD_NODE_FLAGS;
  if (override !== undefined) return override.split(" ").filter(Boolean);
  const start = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).scripts.start;
  const m = / node ((?:--\S+ )*)dist\/main\.js/.exec(start);
  if (!m) throw new Error(`package.json's start script does not run "node [--flags] dist/main.js": ${start}`);
  return m[1].split(" ").filter(Boolean);
}

/** creditd as production runs it (its Node flags, logs at info to a file), on free ports, against the bench's Redis. */
export async function startCreditd({ redisUrl, env = {}, nodeArgs = [], name = "creditd", main = join(ROOT, "dist/main.js") }) {
  const grpcPort = await findFreePort();
  const httpPort = await findFreePort();
  const logPath = join(runDir, `${name}.log`);
  const out = openSync(logPath, "w");
  const child = spawn(process.execPath, [...creditdNodeFlags(), ...nodeArgs, resolve(main)], {
    cwd: runDir,
    env: {
      ...process.env,
      CREDITD_GRPC_ADDR: `127.0.0.1:${grpcPort}`,
      CREDITD_HTTP_ADDR: `127.0.0.1:${httpPort}`,
      CREDITD_REDIS_URL: redisUrl,
      CREDITD_LOG_LEVEL: "info",
      ...env,
    },
    stdio: ["ignore", out, out],
  });
  closeSync(out);
  children.add(child);
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  exited.then(() => children.delete(child));
  // Ready when grpc.health.v1.Health/Check answers SERVING (the scripts are loaded by then), whatever the log level.
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
      const log = readFileSync(logPath, "utf8");
      throw new Error(`creditd did not start (${child.exitCode ?? child.signalCode ?? "timeout"}); log:\n${log.slice(-3000)}`);
    }
    if (await healthServing(grpcPort)) break;
    await sleep(50);
  }
  return {
    pid: child.pid,
    grpcPort,
    httpPort,
    logPath,
    child,
    exited,
    /** SIGTERM and wait (creditd drains, closes Redis and exits 0; --cpu-prof writes its profile then). */
    async stop(timeoutMs = 20_000) {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
  };
}

/** bench/floor-server.mjs (section 1's floor: one Redis round trip, no creditd code) with creditd's Node flags. */
export async function startFloorServer({ redisUrl }) {
  const grpcPort = await findFreePort();
  const child = spawn(process.execPath, [...creditdNodeFlags(), join(ROOT, "bench/floor-server.mjs"), String(grpcPort), redisUrl], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  children.add(child);
  child.on("exit", () => children.delete(child));
  const deadline = Date.now() + 15_000;
  while (!(await healthServing(grpcPort))) {
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) throw new Error("bench/floor-server.mjs did not start");
    await sleep(50);
  }
  return { pid: child.pid, grpcPort };
}

/** One grpc.health.v1.Health/Check over HTTP/2: true when the reply is SERVING. */
function healthServing(port) {
  return new Promise((resolveCheck) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const done = (ok) => {
      session.close();
      resolveCheck(ok);
    };
    session.on("error", () => done(false));
    session.setTimeout(2000, () => done(false));
    const req = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Check", "content-type": "application/grpc", te: "trailers" });
    const chunks = [];
    let status;
    req.on("response", (h) => (status ??= h["grpc-status"]));
    req.on("trailers", (t) => (status = t["grpc-status"]));
    req.on("data", (d) => chunks.push(d));
    req.on("error", () => {});
    req.on("close", () => {
      // HealthCheckResponse { status: SERVING (1) } is the protobuf bytes 08 01 after the 5-byte gRPC header.
      const body = Buffer.concat(chunks);
      done(status === "0" && body.length === 7 && body[5] === 0x08 && body[6] === 0x01);
    });
    req.end(Buffer.alloc(5));
  });
}

/** The load generator process, with a promise per job. */
export function startLoadgen() {
  const child = fork(fileURLToPath(new URL("../loadgen.mjs", import.meta.url)), [], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  children.add(child);
  child.on("exit", () => children.delete(child));
  let seq = 0;
  const pending = new Map();
  child.on("message", (msg) => {
    const p = pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id);
    if (msg.error) p.reject(new Error(`loadgen: ${msg.error}`));
    else p.resolve(msg.result);
  });
  child.on("exit", (code, signal) => {
    for (const p of pending.values()) p.reject(new Error(`loadgen exited (${code ?? signal})`));
    pending.clear();
  });
  return {
    pid: child.pid,
    run(job) {
      const id = ++seq;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        child.send({ id, job });
      });
    },
    stop() {
      if (child.connected) child.send({ type: "exit" });
    },
  };
}

/** Runs a node script in its own process and returns its JSON stdout. */
export function runNodeJson(script, args = [], opts = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), fileURLToPath(new URL(`../${script}`, import.meta.url)), ...args], {
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env, ...(opts.env ?? {}) },
    });
    children.add(child);
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.on("exit", (code) => {
      children.delete(child);
      if (code !== 0) return reject(new Error(`${script} exited with ${code}`));
      try {
        resolve(JSON.parse(out));
      } catch (err) {
        reject(new Error(`${script}: bad JSON output: ${err.message}\n${out.slice(-500)}`));
      }
    });
  });
}

/** The h2load binary, or null. */
export function h2loadPath() {
  try {
    return execFileSync("sh", ["-c", "command -v h2load"], { encoding: "utf8" }).trim() || null;
  } catch {
    return null;
  }
}

/** Runs h2load and parses its summary. */
export function runH2load(args) {
  return new Promise((resolve, reject) => {
    const child = spawn("h2load", args, { stdio: ["ignore", "pipe", "pipe"] });
    children.add(child);
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    child.on("exit", (code) => {
      children.delete(child);
      if (code !== 0) return reject(new Error(`h2load exited with ${code}:\n${out.slice(-2000)}`));
      const m = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(out);
      const t = /finished in ([\d.]+)(m?s), ([\d.]+) req\/s/.exec(out);
      const status = /status codes: (\d+) 2xx/.exec(out);
      if (!m || !t) return reject(new Error(`cannot parse h2load output:\n${out}`));
      resolve({
        done: Number(m[3]),
        succeeded: Number(m[4]),
        failed: Number(m[5]),
        errored: Number(m[6]),
        ok2xx: status ? Number(status[1]) : NaN,
        seconds: Number(t[1]) / (t[2] === "ms" ? 1000 : 1),
        reqPerS: Number(t[3]),
        raw: out,
      });
    });
  });
}

export { ROOT };
