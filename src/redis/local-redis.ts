// The Redis `npm start` uses when none is configured: a redis-server child keeping its data
// (AOF) in ${dataDir}/redis. ${dataDir}/local-redis.json = { host, port, pid } lets other commands
// (the audit CLI) find it, and lets a restart after a crash adopt the redis-server left running
// rather than start a second one on the same AOF files.

import { readFileSync } from "node:fs";
import { mkdir, readFile, realpath, rename, stat, unlink, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { probeRedis, redisCommand } from "./probe.js";
import { startRedisServer } from "./redis-process.js";

export type LocalRedisLogger = Pick<Logger, "info" | "warn">;

export interface LocalRedis {
  /** redis://127.0.0.1:port */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly pid: number;
  /** True when a redis-server left running by an earlier process was taken over. */
  readonly adopted: boolean;
  /** Stops the redis-server (adopted ones too: SIGTERM, then SIGKILL) and removes local-redis.json. Idempotent. */
  stop(): Promise<void>;
}

export interface LocalRedisOptions {
  /** Passed to startRedisServer; default 10 000 ms. */
  readyTimeoutMs?: number;
  /** How long stop() waits after SIGTERM before SIGKILL; default 10 000 ms. */
  stopTimeoutMs?: number;
}

interface LocalRedisInfo {
  host: string;
  port: number;
  pid: number;
}

export function localRedisInfoPath(dataDir: string): string {
  return join(resolve(dataDir), "local-redis.json");
}

function redisDataDir(dataDir: string): string {
  return join(resolve(dataDir), "redis");
}

function urlOf(info: LocalRedisInfo): string {
  return `redis://${info.host.includes(":") ? `[${info.host}]` : info.host}:${info.port}`;
}

/**
 * URL of the local Redis of dataDir when local-redis.json exists and the redis-server it names
 * (same pid) answers PING; null otherwise. Never starts anything.
 */
export async function findLocalRedis(dataDir: string): Promise<string | null> {
  const info = await readInfo(dataDir);
  if (info === undefined) return null;
  const probe = await probeRedis(info.host, info.port, 1000);
  return probe.state === "ready" && probe.pid === info.pid ? urlOf(info) : null;
}

/** Adopts the running local Redis of dataDir, or starts one. */
export async function ensureLocalRedis(
  dataDir: string,
  logger: LocalRedisLogger,
  opts: LocalRedisOptions = {},
): Promise<LocalRedis> {
  const root = resolve(dataDir);
  await mkdir(redisDataDir(root), { recursive: true });
  const releaseLock = await acquireStartLock(root);
  try {
    const adopted = await tryAdopt(root, logger, opts);
    if (adopted !== undefined) return adopted;

    const server = await startRedisServer({
      dir: redisDataDir(root),
      bind: "127.0.0.1",
      logFile: join(root, "redis.log"),
      // Own process group: Ctrl-C reaches creditd only, which drains and then stops Redis.
      detached: true,
      ...(opts.readyTimeoutMs === undefined ? {} : { readyTimeoutMs: opts.readyTimeoutMs }),
      ...(opts.stopTimeoutMs === undefined ? {} : { stopTimeoutMs: opts.stopTimeoutMs }),
    });
    const info: LocalRedisInfo = { host: server.host, port: server.port, pid: server.pid };
    try {
      await writeInfo(root, info);
    } catch (err) {
      await server.stop();
      throw err;
    }
    logger.info({ url: server.url, pid: server.pid, dir: redisDataDir(root) }, "started local redis-server");
    return handle(root, info, false, () => server.stop());
  } finally {
    await releaseLock();
  }
}

function handle(root: string, info: LocalRedisInfo, adopted: boolean, stopServer: () => Promise<void>): LocalRedis {
  let stopping: Promise<void> | undefined;
  return {
    url: urlOf(info),
    host: info.host,
    port: info.port,
    pid: info.pid,
    adopted,
    stop() {
      stopping ??= (async () => {
        await stopServer();
        await removeInfoIfOwnedBy(root, info.pid);
      })();
      return stopping;
    },
  };
}

async function tryAdopt(root: string, logger: LocalRedisLogger, opts: LocalRedisOptions): Promise<LocalRedis | undefined> {
  const info = await readInfo(root);
  if (info === undefined) return undefined;

  let probe = await probeRedis(info.host, info.port, 1000);
  // A redis-server restarted on a large AOF answers LOADING for a while: it is alive, wait for it.
  const loadingDeadline = Date.now() + 60_000;
  while (probe.state === "loading" && probe.pid === info.pid && Date.now() < loadingDeadline) {
    await sleep(100);
    probe = await probeRedis(info.host, info.port, 1000);
  }

  if (probe.state === "ready" && probe.pid === info.pid && (await servesDir(info, redisDataDir(root)))) {
    logger.info({ url: urlOf(info), pid: info.pid }, "adopted the local redis-server left running by an earlier start");
    return handle(root, info, true, () => stopPid(info, opts.stopTimeoutMs ?? 10_000));
  }

  if (probe.state !== "ready" && isAlive(info.pid) && looksLikeRedisOn(info.pid, info.port)) {
    // Starting a second server on the same AOF files could corrupt them; let a human decide.
    throw new Error(
      `${localRedisInfoPath(root)} names redis-server pid ${info.pid} on port ${info.port}, which is running ` +
        `but does not answer (${"reason" in probe ? probe.reason : probe.state}); stop it (kill ${info.pid}) and start again`,
    );
  }
  logger.warn({ file: localRedisInfoPath(root), ...info }, "ignoring stale local-redis.json: that redis-server is gone");
  await unlink(localRedisInfoPath(root)).catch(() => {});
  return undefined;
}

/** Whether the redis-server at info keeps its data in dir (guards against adopting a stranger). */
async function servesDir(info: LocalRedisInfo, dir: string): Promise<boolean> {
  try {
    const reply = await redisCommand(info.host, info.port, ["CONFIG", "GET", "dir"], 1000);
    if (!Array.isArray(reply) || typeof reply[1] !== "string") return false;
    return (await realpath(reply[1])) === (await realpath(dir));
  } catch {
    return false;
  }
}

async function stopPid(info: LocalRedisInfo, timeoutMs: number): Promise<void> {
  if (!signal(info.pid, "SIGTERM")) {
    // Not ours to signal (another user): ask Redis itself; SHUTDOWN flushes the AOF too.
    await redisCommand(info.host, info.port, ["SHUTDOWN"], 1000).catch(() => {});
  }
  const deadline = Date.now() + timeoutMs;
  while (isAlive(info.pid)) {
    if (Date.now() > deadline) {
      signal(info.pid, "SIGKILL");
      break;
    }
    await sleep(25);
  }
  // After SIGKILL (or when we could not signal), wait until the port no longer answers.
  const portDeadline = Date.now() + 2000;
  while (Date.now() < portDeadline && (await probeRedis(info.host, info.port, 200)).state !== "down") {
    await sleep(25);
  }
}

/** Sends a signal; false when the process is gone or not ours to signal. */
function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Linux only: redis-server titles itself "redis-server host:port"; elsewhere assume it might be. */
function looksLikeRedisOn(pid: number, port: number): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    return cmdline.includes("redis-server") && cmdline.includes(`:${port}`);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== "ENOENT";
  }
}

async function readInfo(dataDir: string): Promise<LocalRedisInfo | undefined> {
  let text: string;
  try {
    text = await readFile(localRedisInfoPath(dataDir), "utf8");
  } catch {
    return undefined;
  }
  try {
    const parsed = JSON.parse(text) as Partial<LocalRedisInfo>;
    if (
      typeof parsed.host === "string" &&
      Number.isInteger(parsed.port) &&
      Number.isInteger(parsed.pid) &&
      parsed.pid! > 0
    ) {
      return { host: parsed.host, port: parsed.port!, pid: parsed.pid! };
    }
  } catch {
    // fall through: unreadable file is as good as none
  }
  return undefined;
}

async function writeInfo(root: string, info: LocalRedisInfo): Promise<void> {
  const path = localRedisInfoPath(root);
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, JSON.stringify({ host: info.host, port: info.port, pid: info.pid }) + "\n");
  await rename(temp, path);
}

async function removeInfoIfOwnedBy(root: string, pid: number): Promise<void> {
  const info = await readInfo(root);
  if (info?.pid === pid) await unlink(localRedisInfoPath(root)).catch(() => {});
}

// Two creditd processes starting at once on one data folder must not both start a redis-server
// on the same AOF files: the start (adopt-or-spawn) runs under an exclusive lock file.
const LOCK_STALE_MS = 60_000;
const LOCK_WAIT_MS = 30_000;

async function acquireStartLock(root: string): Promise<() => Promise<void>> {
  const path = join(root, "local-redis.lock");
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      await writeFile(path, String(process.pid), { flag: "wx" });
      return () => unlink(path).catch(() => {});
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    if (await lockIsStale(path)) {
      await unlink(path).catch(() => {});
      continue;
    }
    if (Date.now() > deadline) {
      throw new Error(`another process is starting the local Redis (lock ${path}); remove the file if that is not so`);
    }
    await sleep(50);
  }
}

async function lockIsStale(path: string): Promise<boolean> {
  try {
    const [text, stats] = await Promise.all([readFile(path, "utf8"), stat(path)]);
    if (Date.now() - stats.mtimeMs > LOCK_STALE_MS) return true;
    const holder = Number(text.trim());
    // An empty file is a lock being written right now: not stale.
    return Number.isInteger(holder) && holder > 0 && !isAlive(holder);
  } catch {
    return false; // vanished meanwhile: just try again
  }
}
