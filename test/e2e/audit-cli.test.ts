// The compiled audit CLI (`npm run audit` runs `node dist/cli/audit.js`) against a real Redis and a real Cluster.
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Ledger } from "../../src/ledger/ledger.js";
import { findFreePort, startRedisServer } from "../../src/redis/redis-process.js";
import { openLedger, give, snapshot } from "../support/ledger.js";
import { type TestCluster, type TestRedis, startTestCluster, startTestRedis } from "../support/redis.js";
import { ensureBuilt, runAudit, tempDir } from "../support/server-process.js";

describe("e2e: audit CLI", () => {
  // Build dist/ here, not inside a test: a build takes longer than a test's timeout.
  beforeAll(ensureBuilt, 180_000);

  let redis: TestRedis;
  let client: Redis;

  beforeAll(async () => {
    redis = await startTestRedis();
    client = new Redis(redis.url);
  }, 180_000);

  afterAll(async () => {
    client?.disconnect();
    await redis?.stop();
  });

  describe("usage", () => {
    it("prints the usage with --help and exits 0", async () => {
      const exit = await runAudit(["--help"], {});
      expect(exit.code).toBe(0);
      expect(exit.stdout).toMatch(/^usage: npm run audit/);
      expect(exit.stdout).toContain("--account ID");
      expect(exit.stdout).toContain("--json");
    });

    it.each([
      [["--bogus"], "Unknown option '--bogus'"],
      [["acme"], "Unexpected argument 'acme'"],
      [["--account"], "--account"],
      [["--account", "no spaces"], '--account "no spaces"'],
    ])("rejects %j with the usage and exit 2", async (args, message) => {
      const exit = await runAudit(args, { CREDITD_REDIS_URL: redis.url });
      expect(exit.code).toBe(2);
      expect(exit.stdout).toBe("");
      expect(exit.stderr).toContain(message);
      expect(exit.stderr).toContain("usage: npm run audit");
    });

    it("exits 2 naming the setting when the configuration is invalid", async () => {
      const exit = await runAudit([], { CREDITD_REDIS_URL: redis.url, CREDITD_KEY_PREFIX: "has spaces" });
      expect(exit.code).toBe(2);
      expect(exit.stderr).toContain("CREDITD_KEY_PREFIX");
    });

    it("exits 2 quickly when Redis cannot be reached, without showing the password", async () => {
      const port = await findFreePort();
      const exit = await runAudit([], { CREDITD_REDIS_URL: `redis://:hunter2@127.0.0.1:${port}` });
      expect(exit.code).toBe(2);
      expect(exit.stderr).toContain(`cannot connect to Redis at redis://:***@127.0.0.1:${port}`);
      expect(exit.stderr).not.toContain("hunter2");
      expect(exit.durationMs).toBeLessThan(5000);
    });

    it("exits 2 telling to start creditd or set CREDITD_REDIS_URL when there is no Redis at all", async () => {
      const dir = await tempDir("creditd-e2e-audit");
      try {
        const exit = await runAudit([], { CREDITD_DATA_DIR: dir.path });
        expect(exit.code).toBe(2);
        expect(exit.stderr).toContain("Start creditd (npm start)");
        expect(exit.stderr).toContain("set CREDITD_REDIS_URL");
      } finally {
        await dir.remove();
      }
    });
  });

  describe("auditing", () => {
    let ledger: Ledger;
    let prefix: string;
    const env = (): Record<string, string> => ({ CREDITD_REDIS_URL: redis.url, CREDITD_KEY_PREFIX: prefix });

    beforeAll(async () => {
      ({ ledger, prefix } = await openLedger(client));
      // More accounts than one SCAN batch (COUNT 1000).
      const ids = Array.from({ length: 1234 }, (_, i) => `acct-${i}`);
      await Promise.all(ids.map((id) => give(ledger, id, 10, "allowance")));
      const r = await ledger.reserve({ accountId: "acct-1", requestId: "r1", amountMicros: 4_000_000, ttlMs: 600_000 });
      expect(r.status).toBe("held");
      // Another deployment's accounts on the same Redis are not ours to audit.
      const other = await openLedger(client);
      await give(other.ledger, "stranger", 1, "topup");
      await client.hincrby(`${other.prefix}:{stranger}:acct`, "granted", 99);
    }, 30_000);

    it("audits every account under the prefix, reports them consistent, and changes nothing", async () => {
      const before = await snapshot(client, prefix);
      const exit = await runAudit([], env());
      expect(exit.stderr).toBe("");
      expect(exit.stdout).toBe("audited 1234 accounts: 0 with problems\n");
      expect(exit.code).toBe(0);
      expect(await snapshot(client, prefix)).toEqual(before);
    }, 20_000);

    it("names an unknown --account without failing", async () => {
      const exit = await runAudit(["--account", "acct-1", "--account", "nobody"], env());
      expect(exit.code).toBe(0);
      expect(exit.stdout).toBe(
        "nobody: no such account (nothing stored under it)\naudited 2 accounts: 0 with problems (1 not found)\n",
      );
      const json = await runAudit(["--account", "nobody", "--json"], env());
      expect(JSON.parse(json.stdout)).toMatchObject({ ok: true, audited: 1, withProblems: 0, notFound: ["nobody"] });
    });

    it("reports each broken account on one line and exits 1", async () => {
      // acct-7: more credits than were ever granted in its bucket (overfull) and a total that does not add up.
      await client.hincrby(`${prefix}:{acct-7}:acct`, "b1.r", 5);
      // acct-1: the held total disagrees with its live hold.
      await client.hincrby(`${prefix}:{acct-1}:acct`, "held", 1_000_000);
      const exit = await runAudit([], env());
      expect(exit.code, exit.stderr).toBe(1);
      expect(exit.stdout.trimEnd().split("\n")).toEqual([
        "acct-1: granted 10000000 != available 6000000 + held 5000000 + charged 0 + expired 0 (off by -1000000); " +
          "held total 5000000 != sum of live holds 4000000",
        "acct-7: granted 10000000 != available 10000005 + held 0 + charged 0 + expired 0 (off by -5); " +
          "1 negative or overfull amounts",
        "audited 1234 accounts: 2 with problems",
      ]);

      const json = await runAudit(["--json"], env());
      expect(json.code).toBe(1);
      const parsed = JSON.parse(json.stdout) as Record<string, unknown>;
      expect(parsed).toMatchObject({ ok: false, keyPrefix: prefix, audited: 1234, withProblems: 2, notFound: [] });
      expect(parsed["problems"]).toEqual([
        expect.objectContaining({ accountId: "acct-1", ok: false, grantedMicros: 10_000_000, heldMicros: 5_000_000 }),
        expect.objectContaining({ accountId: "acct-7", ok: false, availableMicros: 10_000_005 }),
      ]);
    }, 20_000);
  });

  it("exits 2, not 1, when Redis refuses the audit's commands", async () => {
    // A Redis without scripting (the ledger's scripts are a Functions library): every account's audit fails (and
    // several are in flight at once).
    const locked = await startRedisServer({ extraArgs: ["--rename-command", "FCALL", "", "--rename-command", "FUNCTION", ""] });
    const lockedClient = new Redis(locked.url);
    try {
      for (let i = 0; i < 40; i++) await lockedClient.hset(`locked:{a${i}}:acct`, "granted", "0");
      const exit = await runAudit([], { CREDITD_REDIS_URL: locked.url, CREDITD_KEY_PREFIX: "locked" });
      expect(exit.code, exit.stdout + exit.stderr).toBe(2);
      expect(exit.stdout).toBe("");
      expect(exit.stderr).toMatch(/^creditd audit: failed: .*unknown command/);
    } finally {
      lockedClient.disconnect();
      await locked.stop();
    }
  });

  describe("on Redis Cluster", () => {
    let cluster: TestCluster;

    beforeAll(async () => {
      cluster = await startTestCluster();
    }, 30_000);

    afterAll(async () => {
      await cluster?.stop();
    });

    it("walks every master through CREDITD_REDIS_CLUSTER_NODES", async () => {
      const node = cluster.nodes[0]!;
      const nodeClient = new Redis(node.port, node.host);
      try {
        const { ledger, prefix } = await openLedger(nodeClient);
        for (const id of ["a", "b", "c"]) await give(ledger, id, 1, "trial");
        await nodeClient.hincrby(`${prefix}:{b}:acct`, "charged", 1);
        const exit = await runAudit([], { CREDITD_REDIS_CLUSTER_NODES: `${node.host}:${node.port}`, CREDITD_KEY_PREFIX: prefix });
        expect(exit.code, exit.stderr).toBe(1);
        expect(exit.stdout).toMatch(/^b: granted 1000000 != .*\(off by -1\)\naudited 3 accounts: 1 with problems\n$/);
      } finally {
        nodeClient.disconnect();
      }
    }, 20_000);
  });
});
