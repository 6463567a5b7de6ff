import { isAlive, withClient } from "../support/redis.js";
import { existsSync, readdirSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { ensureLocalRedis, findLocalRedis, localRedisInfoPath, type LocalRedis } from "../../src/redis/local-redis.js";
import { probeRedis } from "../../src/redis/probe.js";
import { startRedisServer } from "../../src/redis/redis-process.js";

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  // Reverse order: stop servers before removing their folders.
  for (const f of cleanups.splice(0).reverse()) await f();
});

function recordingLogger() {
  const lines: Array<{ level: number; msg: string }> = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { logger, lines };
}

async function dataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "creditd-local-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function ensure(dir: string, logger = recordingLogger().logger): Promise<LocalRedis> {
  const local = await ensureLocalRedis(dir, logger);
  cleanups.push(() => local.stop());
  return local;
}

describe("ensureLocalRedis", () => {
  it("starts a durable redis-server in dataDir/redis and records it in local-redis.json", async () => {
    const dir = await dataDir();
    const { logger, lines } = recordingLogger();
    const local = await ensure(dir, logger);

    expect(local.adopted).toBe(false);
    expect(local.url).toBe(`redis://127.0.0.1:${local.port}`);
    const info = JSON.parse(await readFile(localRedisInfoPath(dir), "utf8"));
    expect(info).toEqual({ host: "127.0.0.1", port: local.port, pid: local.pid });
    expect(lines.some((l) => l.msg === "started local redis-server")).toBe(true);

    await withClient(local.url, async (client) => {
      expect(await client.config("GET", "appendonly")).toEqual(["appendonly", "yes"]);
      expect(await client.config("GET", "dir")).toEqual(["dir", join(dir, "redis")]);
    });
    expect(existsSync(join(dir, "redis", "appendonlydir"))).toBe(true);
    expect(existsSync(join(dir, "redis.log"))).toBe(true);
    expect(existsSync(join(dir, "local-redis.lock"))).toBe(false);

    expect(await findLocalRedis(dir)).toBe(local.url);
  });

  it("stop() ends the process and removes the file; the data survives for the next start", async () => {
    const dir = await dataDir();
    const first = await ensure(dir);
    await withClient(first.url, (client) => client.set("balance", "7"));
    await first.stop();

    expect(isAlive(first.pid)).toBe(false);
    expect(existsSync(localRedisInfoPath(dir))).toBe(false);
    expect(await findLocalRedis(dir)).toBeNull();

    const second = await ensure(dir);
    expect(second.adopted).toBe(false);
    await withClient(second.url, async (client) => expect(await client.get("balance")).toBe("7"));
  });

  it("a second ensureLocalRedis adopts the running one instead of starting another", async () => {
    const dir = await dataDir();
    const first = await ensure(dir);
    const { logger, lines } = recordingLogger();
    const second = await ensure(dir, logger);

    expect(second.adopted).toBe(true);
    expect(second.url).toBe(first.url);
    expect(second.pid).toBe(first.pid);
    expect(lines.some((l) => l.msg.startsWith("adopted"))).toBe(true);

    // Adopted ones are stopped too.
    await second.stop();
    expect(isAlive(first.pid)).toBe(false);
    expect(existsSync(localRedisInfoPath(dir))).toBe(false);
    await first.stop(); // already gone: no error
  });

  it("adopts a redis-server left running by a crashed process", async () => {
    const dir = await dataDir();
    // What a crashed creditd leaves behind: the server and its file, no owner.
    const orphan = await startRedisServer({ dir: join(dir, "redis") });
    cleanups.push(() => orphan.stop());
    await writeFile(localRedisInfoPath(dir), JSON.stringify({ host: orphan.host, port: orphan.port, pid: orphan.pid }));
    await withClient(orphan.url, (client) => client.set("k", "survived"));

    const local = await ensure(dir);
    expect(local.adopted).toBe(true);
    await withClient(local.url, async (client) => expect(await client.get("k")).toBe("survived"));

    await local.stop();
    await orphan.exited;
    expect(existsSync(localRedisInfoPath(dir))).toBe(false);
  });

  it("replaces a stale file whose process is gone", async () => {
    const dir = await dataDir();
    const gone = await startRedisServer({});
    await gone.stop();
    await writeFile(localRedisInfoPath(dir), JSON.stringify({ host: gone.host, port: gone.port, pid: gone.pid }));
    expect(await findLocalRedis(dir)).toBeNull();

    const { logger, lines } = recordingLogger();
    const local = await ensure(dir, logger);
    expect(local.adopted).toBe(false);
    expect(local.pid).not.toBe(gone.pid);
    expect(lines.some((l) => l.msg.startsWith("ignoring stale local-redis.json"))).toBe(true);
    expect(JSON.parse(await readFile(localRedisInfoPath(dir), "utf8")).pid).toBe(local.pid);
  });

  it("does not adopt a live redis-server that keeps its data elsewhere", async () => {
    const dir = await dataDir();
    const stranger = await startRedisServer({});
    cleanups.push(() => stranger.stop());
    await writeFile(localRedisInfoPath(dir), JSON.stringify({ host: stranger.host, port: stranger.port, pid: stranger.pid }));

    const local = await ensure(dir);
    expect(local.adopted).toBe(false);
    expect(local.port).not.toBe(stranger.port);
    await local.stop();
    expect((await probeRedis(stranger.host, stranger.port)).state).toBe("ready"); // left alone
  });

  it("concurrent starts on one folder share a single redis-server", async () => {
    const dir = await dataDir();
    const [a, b] = await Promise.all([ensure(dir), ensure(dir)]);
    expect(a!.pid).toBe(b!.pid);
    expect([a!.adopted, b!.adopted].sort()).toEqual([false, true]);
  });
});

describe("findLocalRedis", () => {
  it("returns null without a file, or with an unreadable one", async () => {
    const dir = await dataDir();
    expect(await findLocalRedis(dir)).toBeNull();
    await writeFile(localRedisInfoPath(dir), "{ broken");
    expect(await findLocalRedis(dir)).toBeNull();
  });

  it("returns null when the port answers but the pid differs", async () => {
    const dir = await dataDir();
    const other = await startRedisServer({});
    cleanups.push(() => other.stop());
    await writeFile(localRedisInfoPath(dir), JSON.stringify({ host: other.host, port: other.port, pid: other.pid + 1 }));
    expect(await findLocalRedis(dir)).toBeNull();
  });

  it("leaves no stray files besides the documented ones", async () => {
    const dir = await dataDir();
    const local = await ensure(dir);
    expect(readdirSync(dir).sort()).toEqual(["local-redis.json", "redis", "redis.log"]);
    await local.stop();
    expect(readdirSync(dir).sort()).toEqual(["redis", "redis.log"]);
  });
});
