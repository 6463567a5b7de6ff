import { isAlive, withClient } from "../support/redis.js";
import { existsSync, readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import { probeRedis } from "../../src/redis/probe.js";
import { findFreePort, RedisServerNotFoundError, startRedisServer, type RedisServer } from "../../src/redis/redis-process.js";

const started: RedisServer[] = [];
const cleanups: Array<() => Promise<unknown>> = [];

afterEach(async () => {
  await Promise.all(started.splice(0).map((s) => s.stop()));
  await Promise.all(cleanups.splice(0).map((f) => f()));
});

async function start(opts: Parameters<typeof startRedisServer>[0] = {}): Promise<RedisServer> {
  const server = await startRedisServer(opts);
  started.push(server);
  return server;
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "creditd-test-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe("startRedisServer", () => {
  it("starts on a free port, answers, and stop() ends the process", async () => {
    const server = await start();
    expect(server.host).toBe("127.0.0.1");
    expect(server.port).toBeGreaterThan(0);
    expect(server.url).toBe(`redis://127.0.0.1:${server.port}`);

    await withClient(server.url, async (client) => {
      expect(await client.ping()).toBe("PONG");
      await client.set("k", "v");
      expect(await client.get("k")).toBe("v");
      // No persistence without a dir.
      expect(await client.config("GET", "appendonly")).toEqual(["appendonly", "no"]);
      expect(await client.config("GET", "save")).toEqual(["save", ""]);
    });

    await server.stop();
    expect(isAlive(server.pid)).toBe(false);
    expect((await probeRedis(server.host, server.port, 200)).state).toBe("down");
    await server.stop(); // idempotent
  });

  it("removes its temporary folder on stop", async () => {
    const server = await start();
    const dir = await withClient(server.url, async (c) => ((await c.config("GET", "dir")) as string[])[1]!);
    expect(existsSync(dir)).toBe(true);
    await server.stop();
    expect(existsSync(dir)).toBe(false);
  });

  it("gives two servers started at once different ports", async () => {
    const [a, b] = await Promise.all([start(), start()]);
    expect(a!.port).not.toBe(b!.port);
    expect(a!.pid).not.toBe(b!.pid);
    expect((await probeRedis(a!.host, a!.port)).state).toBe("ready");
    expect((await probeRedis(b!.host, b!.port)).state).toBe("ready");
  });

  it("turns AOF on with a dir, and the data survives a restart", async () => {
    const dir = join(await tempDir(), "data");
    const first = await start({ dir });
    await withClient(first.url, async (client) => {
      expect(await client.config("GET", "appendonly")).toEqual(["appendonly", "yes"]);
      expect(await client.config("GET", "appendfsync")).toEqual(["appendfsync", "everysec"]);
      expect(await client.config("GET", "save")).toEqual(["save", ""]);
      await client.set("balance", "42");
    });
    await first.stop();

    const files = readdirSync(join(dir, "appendonlydir"));
    expect(files.some((f) => f.endsWith(".aof"))).toBe(true);
    expect(files.some((f) => f.endsWith(".manifest"))).toBe(true);
    expect(existsSync(join(dir, "dump.rdb"))).toBe(false);

    const second = await start({ dir });
    await withClient(second.url, async (client) => expect(await client.get("balance")).toBe("42"));
  });

  it("uses a fixed port when given one, and fails clearly when it is taken", async () => {
    const blocker: Server = createServer((socket) => socket.destroy());
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", () => r()));
    cleanups.push(() => new Promise((r) => blocker.close(r)));
    const port = (blocker.address() as { port: number }).port;

    await expect(start({ port })).rejects.toThrow(/exited with code 1 before answering PING[\s\S]*Address already in use/);

    blocker.close();
    await new Promise((r) => setTimeout(r, 20));
    const server = await start({ port });
    expect(server.port).toBe(port);
  });

  it("retries with another port when the free port it picked is taken before redis-server binds it", async () => {
    const blocker: Server = createServer((socket) => socket.destroy());
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", () => r()));
    cleanups.push(() => new Promise((r) => blocker.close(r)));
    const taken = (blocker.address() as { port: number }).port;

    const offered: number[] = [];
    const server = await start({
      pickFreePort: async (host) => {
        // First offer the taken port, as if another process grabbed it in between.
        const port = offered.length === 0 ? taken : await findFreePort(host);
        offered.push(port);
        return port;
      },
    });
    expect(offered).toHaveLength(2);
    expect(server.port).toBe(offered[1]);

    let attempts = 0;
    await expect(
      start({ pickFreePort: async () => (attempts++, taken) }),
    ).rejects.toThrow(/Address already in use/);
    expect(attempts).toBe(5);
  });

  it("writes its log to logFile and passes extraArgs", async () => {
    const dir = await tempDir();
    const logFile = join(dir, "logs", "redis.log");
    const server = await start({ logFile, extraArgs: ["--maxmemory", "10mb"] });
    await withClient(server.url, async (client) => {
      expect(await client.config("GET", "maxmemory")).toEqual(["maxmemory", String(10 * 1024 * 1024)]);
    });
    expect(existsSync(logFile)).toBe(true);
  });

  it("reports redis-server's own output when it cannot start", async () => {
    await expect(start({ extraArgs: ["--no-such-option", "1"] })).rejects.toThrow(/Bad directive or wrong number of arguments/);
  });

  it("says how to fix a missing binary", async () => {
    const attempt = startRedisServer({ bin: "/nonexistent/redis-server" });
    await expect(attempt).rejects.toBeInstanceOf(RedisServerNotFoundError);
    await expect(attempt).rejects.toThrow(
      "redis-server not found: install it (e.g. apt-get install redis-server) or set CREDITD_REDIS_URL to an existing Redis",
    );
  });

  it("reads the binary from REDIS_SERVER_BIN", async () => {
    const saved = process.env["REDIS_SERVER_BIN"];
    process.env["REDIS_SERVER_BIN"] = "/nonexistent/bin/redis-server";
    try {
      await expect(startRedisServer({})).rejects.toThrow(/redis-server not found.*\/nonexistent\/bin\/redis-server/);
    } finally {
      if (saved === undefined) delete process.env["REDIS_SERVER_BIN"];
      else process.env["REDIS_SERVER_BIN"] = saved;
    }
  });
});
