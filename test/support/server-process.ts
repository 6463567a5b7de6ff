// End-to-end harness: runs the real `node dist/main.js` (and the compiled CLIs) as child processes.
//
// ensureBuilt() rebuilds dist/ when it is missing or older than src/ (under a lock, so test files running in
// parallel build once), so a single e2e file can be run without `npm test`'s pretest build.
// startServer() waits for the "creditd serving" log line and reads the bound ports from it (listen on port 0);
// stop() sends SIGTERM and returns the exit code with everything the process printed.

import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, rm, rmdir, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

/** The repository root. */
export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const DIST = join(ROOT, "dist");
export const MAIN_JS = join(DIST, "main.js");
export const AUDIT_JS = join(DIST, "cli", "audit.js");

const BUILD_TIMEOUT_MS = 180_000;
const LOCK_STALE_MS = 240_000;

/** Output kept per stream (the start of a long output is the least useful part). */
const OUTPUT_KEEP_CHARS = 256 * 1024;

// ---------------------------------------------------------------------------------------------
// Build

async function newestMtime(dir: string): Promise<number> {
  let newest = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const { mtimeMs } = await stat(join(entry.parentPath, entry.name));
    newest = Math.max(newest, mtimeMs);
  }
  return newest;
}

async function mtimeOrZero(path: string): Promise<number> {
  try {
    return (await stat(path)).mtimeMs;
  } catch {
    return 0;
  }
}

/** Why dist/ must be (re)built, or undefined when it is up to date with src/. */
export async function staleReason(): Promise<string | undefined> {
  const luaSrc = join(ROOT, "src", "ledger", "lua");
  const luaDist = join(DIST, "ledger", "lua");
  const outputs = [MAIN_JS, AUDIT_JS];
  for (const entry of await readdir(luaSrc, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) outputs.push(join(luaDist, entry.parentPath.slice(luaSrc.length), entry.name));
  }
  let oldestOutput = Infinity;
  for (const output of outputs) {
    const mtime = await mtimeOrZero(output);
    if (mtime === 0) return `${output} is missing`;
    oldestOutput = Math.min(oldestOutput, mtime);
  }
  const newestInput = Math.max(
    await newestMtime(join(ROOT, "src")),
    await mtimeOrZero(join(ROOT, "tsconfig.json")),
    await mtimeOrZero(join(ROOT, "tsconfig.build.json")),
  );
  return newestInput > oldestOutput ? "src/ changed since the last build" : undefined;
}

function lockPath(): string {
  const tag = createHash("sha256").update(ROOT).digest("hex").slice(0, 12);
  return join(tmpdir(), `creditd-e2e-build-${tag}.lock`);
}

async function withBuildLock<T>(fn: () => Promise<T>): Promise<T> {
  const path = lockPath();
  const deadline = Date.now() + BUILD_TIMEOUT_MS;
  for (;;) {
    try {
      await mkdir(path);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const lockedAt = await mtimeOrZero(path);
    if (lockedAt === 0) continue; // released meanwhile
    if (Date.now() - lockedAt > LOCK_STALE_MS) {
      // Left behind by a killed run.
      await rmdir(path).catch(() => {});
      continue;
    }
    if (Date.now() > deadline) throw new Error(`waited ${BUILD_TIMEOUT_MS} ms for the build lock ${path}`);
    await sleep(100);
  }
  try {
    return await fn();
  } finally {
    await rmdir(path).catch(() => {});
  }
}

let built: Promise<void> | undefined;

/** Builds dist/ with `npm run build` unless it is up to date. Once per test file; safe in parallel. */
export function ensureBuilt(): Promise<void> {
  built ??= withBuildLock(async () => {
    const reason = await staleReason();
    if (reason === undefined) return;
    const result = await run("npm", ["run", "build", "--silent"], { env: process.env, timeoutMs: BUILD_TIMEOUT_MS });
    if (result.code !== 0) {
      throw new Error(
        `npm run build failed (exit ${result.code ?? result.signal}; rebuilding because ${reason}):\n` +
          `${result.stdout}${result.stderr}`,
      );
    }
  });
  return built;
}

// ---------------------------------------------------------------------------------------------
// Processes

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** From spawn to exit. */
  durationMs: number;
}

/** Environment overrides: a string sets the variable, undefined removes it. */
export type EnvOverrides = Record<string, string | undefined>;

/**
 * The environment a test process gets: this process's environment without any CREDITD_* variable (a developer's
 * own settings must not leak in), listening on free ports, logging at info (the "creditd serving" line), then
 * the overrides.
 */
export function testEnv(overrides: EnvOverrides = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith("CREDITD_")) env[name] = value;
  }
  env["CREDITD_GRPC_ADDR"] = "127.0.0.1:0";
  env["CREDITD_HTTP_ADDR"] = "127.0.0.1:0";
  env["CREDITD_LOG_LEVEL"] = "info";
  for (const [name, value] of Object.entries(overrides)) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  return env;
}

/** Children still running; killed if the test process exits without stopping them. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  live.add(child);
  child.once("exit", () => live.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once("exit", () => {
      for (const c of live) c.kill("SIGKILL");
    });
  }
}

interface Spawned {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<ProcessExit>;
}

function spawnCaptured(command: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): Spawned {
  const startedAt = Date.now();
  const child = spawn(command, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  track(child);
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    stdout = (stdout + chunk).slice(-OUTPUT_KEEP_CHARS);
  });
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-OUTPUT_KEEP_CHARS);
  });
  const exited = new Promise<ProcessExit>((resolve, reject) => {
    child.once("error", reject);
    // 'close' (not 'exit'): the pipes are drained, so the last lines are in.
    child.once("close", (code, signal) =>
      resolve({ code, signal, stdout, stderr, durationMs: Date.now() - startedAt }),
    );
  });
  exited.catch(() => {});
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

/** Runs a command to its end (SIGKILL after timeoutMs, reported in the result as signal SIGKILL). */
export async function run(
  command: string,
  args: string[],
  opts: { env: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string },
): Promise<ProcessExit> {
  const p = spawnCaptured(command, args, opts.env, opts.cwd ?? ROOT);
  const timer = setTimeout(() => p.child.kill("SIGKILL"), opts.timeoutMs ?? 15_000);
  try {
    return await p.exited;
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `node dist/main.js` expecting it to exit by itself (a failed start); SIGKILL after timeoutMs. */
export async function runServerToExit(env: EnvOverrides, timeoutMs = 10_000): Promise<ProcessExit> {
  await ensureBuilt();
  return run(process.execPath, [MAIN_JS], { env: testEnv(env), timeoutMs });
}

/** Runs the compiled audit CLI (`npm run audit` without the build) with the given environment. */
export async function runAudit(args: string[], env: EnvOverrides, timeoutMs = 15_000): Promise<ProcessExit> {
  await ensureBuilt();
  return run(process.execPath, [AUDIT_JS, ...args], { env: testEnv(env), timeoutMs });
}

export type LogLine = Record<string, unknown> & { msg?: string; level?: number };

/** The JSON lines (pino) of an output; other lines are skipped. */
export function jsonLines(output: string): LogLine[] {
  const lines: LogLine[] = [];
  for (const line of output.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      lines.push(JSON.parse(line) as LogLine);
    } catch {
      // a partial last line, or not JSON after all
    }
  }
  return lines;
}

export interface ServerProcess {
  readonly pid: number;
  /** "127.0.0.1:port" of the gRPC server, from the "creditd serving" line. */
  readonly grpcAddr: string;
  /** "127.0.0.1:port" of the HTTP (Connect JSON) server. */
  readonly httpAddr: string;
  /** "http://127.0.0.1:port" */
  readonly httpUrl: string;
  /** The "creditd serving" log line. */
  readonly serving: LogLine;
  /** Everything printed so far. */
  stdout(): string;
  stderr(): string;
  /** The JSON log lines printed so far. */
  logs(): LogLine[];
  /** Resolves when the process has exited (for whatever reason). */
  readonly exited: Promise<ProcessExit>;
  /** Sends a signal without waiting. */
  kill(signal: NodeJS.Signals): void;
  /**
   * SIGTERM, then waits for the exit; after timeoutMs (default 15 s) SIGKILL, and the result shows signal
   * SIGKILL. Idempotent.
   */
  stop(timeoutMs?: number): Promise<ProcessExit>;
}

export interface StartServerOptions {
  /** Overrides over testEnv(): set CREDITD_REDIS_URL, CREDITD_KEY_PREFIX, ... */
  env?: EnvOverrides;
  /** How long to wait for the "creditd serving" line; default 15 s. */
  startTimeoutMs?: number;
  cwd?: string;
  /** Node flags before dist/main.js (production's are in package.json's start script). */
  nodeArgs?: readonly string[];
}

function describeOutput(stdout: string, stderr: string): string {
  const tail = (s: string): string => s.trimEnd().split("\n").slice(-40).join("\n");
  return `\n--- stdout ---\n${tail(stdout) || "(none)"}\n--- stderr ---\n${tail(stderr) || "(none)"}`;
}

/** Starts `node dist/main.js` (building dist/ first when needed) and resolves once it serves. */
export async function startServer(opts: StartServerOptions = {}): Promise<ServerProcess> {
  await ensureBuilt();
  const timeoutMs = opts.startTimeoutMs ?? 15_000;
  const p = spawnCaptured(process.execPath, [...(opts.nodeArgs ?? []), MAIN_JS], testEnv(opts.env), opts.cwd ?? ROOT);

  const findServing = (): LogLine | undefined => jsonLines(p.stdout()).find((l) => l.msg === "creditd serving");
  const serving = await new Promise<LogLine>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      p.child.kill("SIGKILL");
      void p.exited.then(() =>
        reject(
          new Error(
            `creditd did not log "creditd serving" within ${timeoutMs} ms${describeOutput(p.stdout(), p.stderr())}`,
          ),
        ),
      );
    }, timeoutMs);
    const onData = (): void => {
      const line = findServing();
      if (line) {
        cleanup();
        resolve(line);
      }
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      p.child.stdout!.off("data", onData);
    };
    p.child.stdout!.on("data", onData);
    p.exited.then(
      (exit) => {
        cleanup();
        const line = findServing();
        if (line) resolve(line); // served, then exited: the caller will see it on `exited`
        else {
          const how = exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
          reject(new Error(`creditd exited with ${how} before serving${describeOutput(exit.stdout, exit.stderr)}`));
        }
      },
      (err: unknown) => {
        cleanup();
        reject(new Error(`cannot spawn ${process.execPath} ${MAIN_JS}: ${(err as Error).message}`));
      },
    );
  });

  const grpcAddr = String(serving["grpc"]);
  const httpAddr = String(serving["http"]);
  if (!/:\d+$/.test(grpcAddr) || !/:\d+$/.test(httpAddr) || /:0$/.test(grpcAddr) || /:0$/.test(httpAddr)) {
    p.child.kill("SIGKILL");
    await p.exited;
    throw new Error(`"creditd serving" line without bound grpc/http host:port: ${JSON.stringify(serving)}`);
  }

  let stopping: Promise<ProcessExit> | undefined;
  return {
    pid: p.child.pid!,
    grpcAddr,
    httpAddr,
    httpUrl: `http://${httpAddr}`,
    serving,
    stdout: p.stdout,
    stderr: p.stderr,
    logs: () => jsonLines(p.stdout()),
    exited: p.exited,
    kill(signal) {
      p.child.kill(signal);
    },
    stop(stopTimeoutMs = 15_000) {
      stopping ??= (async () => {
        if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGTERM");
        const timer = setTimeout(() => p.child.kill("SIGKILL"), stopTimeoutMs);
        try {
          return await p.exited;
        } finally {
          clearTimeout(timer);
        }
      })();
      return stopping;
    },
  };
}

/** A fresh temporary folder, removed by the returned function. */
export async function tempDir(prefix: string): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `${prefix}-`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** Whether a process exists (signal 0). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Waits until check() is true, polling; throws with `what` after timeoutMs. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}
