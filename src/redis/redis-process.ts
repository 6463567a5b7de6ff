// Spawns and manages a redis-server child process: the local Redis of `npm start` and the
// real Redis every integration test runs against.

import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { rmSync } from "node:fs";
import { mkdir, mkdtemp, open, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { probeRedis } from "./probe.js";

export interface StartRedisOptions {
  /** TCP port; 0 or undefined picks a free one (retrying if another process takes it first). */
  port?: number;
  /** Address to listen on; default 127.0.0.1. */
  bind?: string;
  /**
   * Data folder (created if missing). When set, data is durable: AOF on (fsync every second),
   * RDB snapshots off. When unset, nothing is persisted and a temporary folder is used and removed.
   */
  dir?: string;
  /** More redis-server arguments, appended last (so they win), e.g. ["--maxmemory", "100mb"]. */
  extraArgs?: string[];
  /** redis-server writes its log here instead of stdout. */
  logFile?: string;
  /** Own process group, so a terminal's Ctrl-C reaches only the parent, which then stops Redis after draining. */
  detached?: boolean;
  /** How long to wait for the first PONG; default 10 000 ms. */
  readyTimeoutMs?: number;
  /** How long stop() waits after SIGTERM before SIGKILL; default 10 000 ms. */
  stopTimeoutMs?: number;
  /** redis-server binary; default $REDIS_SERVER_BIN or "redis-server" on the PATH. */
  bin?: string;
  /** How a free port is chosen when port is 0/unset; default asks the OS (findFreePort). */
  pickFreePort?: (host: string) => Promise<number>;
}

export interface RedisServer {
  /** Host to connect to (a wildcard bind address maps to loopback). */
  readonly host: string;
  readonly port: number;
  readonly pid: number;
  /** redis://host:port */
  readonly url: string;
  /** Resolves when the process has exited, for whatever reason. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM (Redis flushes its AOF and exits), then SIGKILL after stopTimeoutMs. Idempotent. */
  stop(): Promise<void>;
}

export class RedisServerNotFoundError extends Error {
  override readonly name = "RedisServerNotFoundError";
}

const NOT_FOUND_MESSAGE =
  "redis-server not found: install it (e.g. apt-get install redis-server) or set CREDITD_REDIS_URL to an existing Redis";

const FREE_PORT_ATTEMPTS = 5;
const OUTPUT_KEEP_CHARS = 16_384;

/** Starts redis-server and resolves once it answers PING. */
export async function startRedisServer(opts: StartRedisOptions = {}): Promise<RedisServer> {
  const bind = opts.bind ?? "127.0.0.1";
  const pickPort = opts.port === undefined || opts.port === 0;
  const dir = opts.dir === undefined ? undefined : resolve(opts.dir);
  if (dir !== undefined) await mkdir(dir, { recursive: true });
  const logFile = opts.logFile === undefined ? undefined : resolve(opts.logFile);
  if (logFile !== undefined) await mkdir(dirname(logFile), { recursive: true });

  for (let attempt = 1; ; attempt++) {
    const port = pickPort ? await (opts.pickFreePort ?? findFreePort)(bind) : opts.port!;
    const tempDir = dir === undefined ? await mkdtemp(join(tmpdir(), "creditd-redis-")) : undefined;
    try {
      return await startOnce({ ...opts, bind, port, dir: dir ?? tempDir!, tempDir, logFile });
    } catch (err) {
      if (tempDir !== undefined) await rm(tempDir, { recursive: true, force: true });
      if (err instanceof PortTaken && pickPort && attempt < FREE_PORT_ATTEMPTS) continue;
      throw err instanceof PortTaken ? err.cause : err;
    }
  }
}

/** Another process bound the port between our check and redis-server's bind. */
class PortTaken extends Error {
  constructor(override readonly cause: Error) {
    super(cause.message);
  }
}

interface StartOnceOptions extends StartRedisOptions {
  bind: string;
  port: number;
  dir: string;
  tempDir: string | undefined;
  logFile: string | undefined;
}

async function startOnce(opts: StartOnceOptions): Promise<RedisServer> {
  const bin = opts.bin ?? (process.env["REDIS_SERVER_BIN"] || "redis-server");
  const args = [
    "--port", String(opts.port),
    "--bind", opts.bind,
    "--dir", opts.dir,
    "--daemonize", "no",
    "--save", "",
    ...(opts.tempDir === undefined
      ? ["--appendonly", "yes", "--appendfsync", "everysec"]
      : ["--appendonly", "no"]),
    ...(opts.logFile === undefined ? [] : ["--logfile", opts.logFile]),
    ...(opts.extraArgs ?? []),
  ];

  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"], detached: opts.detached ?? false });
  let output = "";
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString("utf8")).slice(-OUTPUT_KEEP_CHARS);
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);

  try {
    await Promise.race([once(child, "spawn"), once(child, "error").then(([err]) => Promise.reject(err))]);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") {
      const tried = bin === "redis-server" ? "" : ` (tried ${JSON.stringify(bin)})`;
      throw new RedisServerNotFoundError(NOT_FOUND_MESSAGE + tried);
    }
    throw new Error(`cannot start ${bin}: ${(err as Error).message}`);
  }
  const pid = child.pid!;
  // After a successful spawn, 'error' only reports failed kill() calls; keep it from crashing the process.
  child.on("error", () => {});

  let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit) => {
    child.on("exit", (code, signal) => {
      exitInfo = { code, signal };
      running.delete(entry);
      resolveExit(exitInfo);
    });
  });
  const entry: RunningChild = { child, tempDir: opts.tempDir };
  running.add(entry);
  installExitHook();

  const host = connectHost(opts.bind);
  const where = `${formatHost(host)}:${opts.port}`;
  const describeOutput = async (): Promise<string> => {
    const logTail = opts.logFile === undefined ? "" : await readTail(opts.logFile, 4096);
    const text = (output + logTail).trim().split("\n").slice(-20).join("\n");
    return text === "" ? " (no output)" : `; last output:\n${text}`;
  };

  const readyTimeoutMs = opts.readyTimeoutMs ?? 10_000;
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (exitInfo !== undefined) {
      // Give the pipes a moment to deliver the last lines.
      await sleep(20);
      const how = exitInfo.signal ? `signal ${exitInfo.signal}` : `code ${exitInfo.code}`;
      const err = new Error(`redis-server (${bin}) on ${where} exited with ${how} before answering PING${await describeOutput()}`);
      const logText = output + (opts.logFile === undefined ? "" : await readTail(opts.logFile, 4096));
      if (/address already in use/i.test(logText)) throw new PortTaken(err);
      throw err;
    }
    // Raced with the exit so a foreign listener on the port that never replies does not delay the verdict.
    const probe = await Promise.race([
      probeRedis(host, opts.port, 500),
      exited.then(() => ({ state: "down", reason: "exited" }) as const),
    ]);
    // The pid check guards against the race where another redis-server took the port.
    if (probe.state === "ready" && probe.pid === pid) break;
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      await exited;
      throw new Error(
        `redis-server (${bin}) on ${where} did not answer PING within ${readyTimeoutMs} ms ` +
          `(last probe: ${probe.state}${"reason" in probe ? `, ${probe.reason}` : ""})${await describeOutput()}`,
      );
    }
    await sleep(probe.state === "loading" ? 100 : 15);
  }

  let stopping: Promise<void> | undefined;
  const stopTimeoutMs = opts.stopTimeoutMs ?? 10_000;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (exitInfo === undefined) {
        child.kill("SIGTERM");
        const timedOut = Symbol("timeout");
        const ac = new AbortController();
        const result = await Promise.race([exited, sleep(stopTimeoutMs, timedOut, { signal: ac.signal }).catch(() => undefined)]);
        ac.abort();
        if (result === timedOut) {
          child.kill("SIGKILL");
          await exited;
        }
      }
      if (opts.tempDir !== undefined) await rm(opts.tempDir, { recursive: true, force: true });
    })();
    return stopping;
  };

  return {
    host,
    port: opts.port,
    pid,
    url: `redis://${formatHost(host)}:${opts.port}`,
    exited,
    stop,
  };
}

/** A port that was free a moment ago (the caller retries if it is taken before use). */
export async function findFreePort(host = "127.0.0.1"): Promise<number> {
  const server = createServer();
  server.unref();
  server.listen(0, host);
  await once(server, "listening");
  const address = server.address();
  await new Promise<void>((resolveClose) => server.close(() => resolveClose()));
  if (address === null || typeof address === "string") throw new Error("cannot determine a free port");
  return address.port;
}

function connectHost(bind: string): string {
  const first = bind.trim().split(/\s+/)[0] ?? "127.0.0.1";
  if (first === "0.0.0.0" || first === "*" || first === "") return "127.0.0.1";
  if (first === "::" || first === "::0") return "::1";
  return first.replace(/^-/, ""); // redis allows "-addr" for optional binds
}

function formatHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

async function readTail(path: string, bytes: number): Promise<string> {
  try {
    const handle = await open(path, "r");
    try {
      const { size } = await handle.stat();
      const length = Math.min(size, bytes);
      const buf = Buffer.alloc(length);
      await handle.read(buf, 0, length, size - length);
      return buf.toString("utf8");
    } finally {
      await handle.close();
    }
  } catch {
    return "";
  }
}

// Children still running when this process exits (normally or on an uncaught exception) get
// SIGTERM, so test runs and crashed starts do not leave redis-servers behind. SIGTERM keeps AOF safe.
interface RunningChild {
  child: ChildProcess;
  tempDir: string | undefined;
}
const running = new Set<RunningChild>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const { child, tempDir } of running) {
      try {
        child.kill("SIGTERM");
      } catch {
        // already gone
      }
      if (tempDir !== undefined) {
        try {
          rmSync(tempDir, { recursive: true, force: true });
        } catch {
          // best effort
        }
      }
    }
  });
}
