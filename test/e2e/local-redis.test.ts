// No Redis configured: the process starts its own redis-server in CREDITD_DATA_DIR, the audit CLI finds it
// through local-redis.json, and SIGTERM stops both.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { probeRedis } from "../../src/redis/probe.js";
import {
  type ServerProcess,
  ensureBuilt,
  isAlive,
  runAudit,
  startServer,
  tempDir,
  waitFor,
} from "../support/server-process.js";
import { okJson, uniquePrefix } from "./clients.js";

interface LocalRedisInfo {
  host: string;
  port: number;
  pid: number;
}

describe("e2e: local redis-server and the audit CLI", () => {
  // Build dist/ here, not inside a test: a build takes longer than a test's timeout.
  beforeAll(ensureBuilt, 180_000);

  let dir: { path: string; remove: () => Promise<void> };
  let server: ServerProcess | undefined;
  let info: LocalRedisInfo | undefined;
  const prefix = uniquePrefix("local");
  let env: Record<string, string | undefined>;

  beforeAll(async () => {
    dir = await tempDir("creditd-e2e-local");
    env = { CREDITD_DATA_DIR: dir.path, CREDITD_KEY_PREFIX: prefix, REDIS_SERVER_BIN: undefined };
  });

  afterAll(async () => {
    // A failed test must not leave the server or its redis-server behind.
    if (server) await server.stop();
    if (info && isAlive(info.pid)) process.kill(info.pid, "SIGKILL");
    await dir?.remove();
  });

  it("starts its own redis-server, writes local-redis.json, and serves", async () => {
    server = await startServer({ env });
    expect(server.serving["localRedis"]).toBe(true);
    info = JSON.parse(await readFile(join(dir.path, "local-redis.json"), "utf8")) as LocalRedisInfo;
    expect(info).toEqual({ host: "127.0.0.1", port: expect.any(Number), pid: expect.any(Number) });
    expect(server.serving["redis"]).toBe(`redis://127.0.0.1:${info.port}`);
    const probe = await probeRedis(info.host, info.port, 1000);
    expect(probe).toMatchObject({ state: "ready", pid: info.pid });
    expect(isAlive(info.pid)).toBe(true);
  }, 30_000);

  it("the audit CLI finds that Redis and reports every account consistent after some traffic", async () => {
    const url = server!.httpUrl;
    for (const account of ["acme", "globex"]) {
      await okJson(url, "creditd.v1.AdminService/Grant", { accountId: account, grantId: "g1", amountMicros: "50000000", kind: "BUCKET_KIND_ALLOWANCE" });
      await okJson(url, "creditd.v1.AdminService/Grant", { accountId: account, grantId: "g2", amountMicros: "7000000", kind: "BUCKET_KIND_TOPUP" });
      await okJson(url, "creditd.v1.CreditService/Reserve", { accountId: account, requestId: `${account}-r1`, amountMicros: "52000000" });
      await okJson(url, "creditd.v1.CreditService/Settle", { reservationId: `${account}:${account}-r1`, chargeMicros: "51000000" });
      await okJson(url, "creditd.v1.CreditService/Reserve", { accountId: account, requestId: `${account}-r2`, amountMicros: "3000000" });
    }
    await okJson(url, "creditd.v1.CreditService/Refund", { reservationId: "globex:globex-r2" });

    const audit = await runAudit([], env);
    expect(audit.stderr).toBe("");
    expect(audit.stdout).toBe("audited 2 accounts: 0 with problems\n");
    expect(audit.code).toBe(0);

    const json = await runAudit(["--json"], env);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({
      ok: true,
      keyPrefix: prefix,
      audited: 2,
      withProblems: 0,
      notFound: [],
      problems: [],
    });
  }, 30_000);

  it("exits 1 and names the account after one is corrupted on purpose", async () => {
    const redis = new Redis(`redis://${info!.host}:${info!.port}`);
    try {
      await redis.hincrby(`${prefix}:{acme}:acct`, "granted", 1);
    } finally {
      redis.disconnect();
    }

    const audit = await runAudit([], env);
    expect(audit.code, audit.stdout + audit.stderr).toBe(1);
    const lines = audit.stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^acme: granted 57000001 != available \d+ \+ held \d+ \+ charged \d+ \+ expired \d+ \(off by 1\)$/);
    expect(lines[1]).toBe("audited 2 accounts: 1 with problems");

    const json = await runAudit(["--json"], env);
    expect(json.code).toBe(1);
    const parsed = JSON.parse(json.stdout) as { ok: boolean; withProblems: number; problems: Array<{ accountId: string; problems: string[] }> };
    expect(parsed.ok).toBe(false);
    expect(parsed.withProblems).toBe(1);
    expect(parsed.problems.map((p) => p.accountId)).toEqual(["acme"]);
    expect(parsed.problems[0]!.problems[0]).toMatch(/\(off by 1\)$/);

    // Only the named accounts: the healthy one passes, the corrupted one does not.
    const healthy = await runAudit(["--account", "globex"], env);
    expect(healthy.code, healthy.stdout + healthy.stderr).toBe(0);
    expect(healthy.stdout).toBe("audited 1 account: 0 with problems\n");
    const both = await runAudit(["--account", "globex", "--account", "acme"], env);
    expect(both.code).toBe(1);
    expect(both.stdout).toMatch(/^acme: .*\naudited 2 accounts: 1 with problems\n$/);
  }, 30_000);

  it("on SIGTERM stops its redis-server, removes local-redis.json, and exits 0", async () => {
    const exit = await server!.stop();
    server = undefined;
    expect(exit.code, exit.stdout + exit.stderr).toBe(0);
    await waitFor("the local redis-server to be gone", () => !isAlive(info!.pid), 5000);
    expect((await probeRedis(info!.host, info!.port, 500)).state).toBe("down");
    await expect(readFile(join(dir.path, "local-redis.json"), "utf8")).rejects.toMatchObject({ code: "ENOENT" });

    // With nothing running, the audit has no Redis to look at.
    const audit = await runAudit([], env);
    expect(audit.code).toBe(2);
    expect(audit.stdout).toBe("");
    expect(audit.stderr).toMatch(/start creditd/i);
    expect(audit.stderr).toContain("CREDITD_REDIS_URL");
  }, 30_000);
});
