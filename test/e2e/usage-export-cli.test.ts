// The compiled export CLI (`npm run export` runs `node dist/cli/export.js`) against a real Redis: the file it writes
// is byte for byte what ExportUsage streams, and its peak memory does not grow with the export's size.
import { readFile, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExportFormat } from "../../src/gen/creditd/v1/usage_service_pb.js";
import { findFreePort } from "../../src/redis/redis-process.js";
import { HOUR } from "../support/ledger.js";
import { type TestRedis, startTestRedis } from "../support/redis.js";
import { DIST, type EnvOverrides, type ProcessExit, ensureBuilt, run, tempDir, testEnv } from "../support/server-process.js";
import { T0, type Harness, bulkCycles, harness } from "../usage/harness.js";

const EXPORT_JS = join(DIST, "cli", "export.js");
/** Prints the process's peak resident set size when it exits (kilobytes, from getrusage). */
const MAX_RSS_HOOK =
  'data:text/javascript,process.on("exit",()=>process.stderr.write("maxrss_kb="+process.resourceUsage().maxRSS+"\\n"))';

/** The V8 old-space cap the memory test exports under, in MB. */
const HEAP_CAP_MB = 40;

async function runExport(args: string[], env: EnvOverrides, nodeArgs: string[] = []): Promise<ProcessExit> {
  await ensureBuilt();
  return run(process.execPath, [...nodeArgs, EXPORT_JS, ...args], { env: testEnv(env), timeoutMs: 60_000 });
}

describe("e2e: export CLI", () => {
  beforeAll(ensureBuilt, 180_000);

  let redis: TestRedis;
  let client: Redis;
  let h: Harness;
  let dir: { path: string; remove: () => Promise<void> };
  const env = (): EnvOverrides => ({ CREDITD_REDIS_URL: redis.url, CREDITD_KEY_PREFIX: h.prefix });

  beforeAll(async () => {
    redis = await startTestRedis();
    client = new Redis(redis.url);
    dir = await tempDir("creditd-e2e-export");
    h = harness(client);
    await h.grant("acme", 10_000);
    await h.chat("acme", 'gpt,"quoted"', { input: 11, output: 7 }, { memberId: "ann" });
    h.clock.advance(HOUR);
    const id = await h.chat("acme", "m-large", { input: 3, output: 2 }, { memberId: "bo" });
    h.clock.advance(HOUR);
    await h.refund(id, 'it said "no", twice');
    await h.settle(await h.reserve("acme", { operation: "rewrite" }, { memberId: "ann" }), {});
  }, 60_000);

  afterAll(async () => {
    await h?.close();
    client?.disconnect();
    await redis?.stop();
    await dir?.remove();
  });

  it("writes the file ExportUsage would stream, and says how many records", async () => {
    const out = join(dir.path, "acme.csv");
    const exit = await runExport(["--account", "acme", "--out", out], env());
    expect(exit.stderr).toContain(`4 records of acme written to ${out} (csv)`);
    expect(exit.code).toBe(0);
    expect(await readFile(out, "utf8")).toBe(await h.exportText({ accountId: "acme", format: ExportFormat.CSV }));
    // Only the file: the temporary one was renamed.
    expect(await readdir(dir.path)).toEqual(["acme.csv"]);
  });

  it("JSON Lines to stdout, with the filters and range of ExportUsage", async () => {
    const exit = await runExport(
      ["--account", "acme", "--format", "jsonl", "--out", "-", "--member", "ann", "--from", new Date(T0).toISOString(), "--to", "2026-01-15T14:00:00Z"],
      env(),
    );
    expect(exit.code).toBe(0);
    const expected = await h.exportText({
      accountId: "acme",
      format: ExportFormat.JSONL,
      filter: { memberId: "ann", from: timestampFromMs(T0), to: timestampFromMs(Date.UTC(2026, 0, 15, 14)) },
    });
    expect(expected.split("\n")).toHaveLength(2);
    expect(exit.stdout).toBe(expected);
    const byModel = await runExport(["--account", "acme", "--out", "-", "--model", "m-large", "--format", "jsonl"], env());
    expect(byModel.stdout.trim().split("\n").map((l) => (JSON.parse(l) as { kind: string }).kind)).toEqual([
      "USAGE_KIND_CHARGE",
      "USAGE_KIND_REFUND",
    ]);
  });

  it("prints the usage with --help and exits 0", async () => {
    const exit = await runExport(["--help"], {});
    expect(exit.code).toBe(0);
    expect(exit.stdout).toMatch(/^usage: npm run export/);
    expect(exit.stdout).toContain("credits_micros");
  });

  it.each([
    [["--out", "-"], "--account is required"],
    [["--account", "acme"], "--out is required"],
    [["--account", "no spaces", "--out", "-"], "--account: must be 1-128 characters"],
    [["--account", "acme", "--out", "-", "--format", "xml"], '--format "xml"'],
    [["--account", "acme", "--out", "-", "--from", "March 7"], '--from "March 7": not an ISO 8601 time'],
    [["--account", "acme", "--out", "-", "--from", "2026-02-01", "--to", "2026-01-01"], "--from: must be before --to"],
    [["--account", "acme", "--out", "-", "--member", "a|b"], "--member: must be"],
    [["--account", "acme", "--out", "-", "--bogus"], "Unknown option '--bogus'"],
  ])("rejects %j with the usage and exit 2", async (args, message) => {
    const exit = await runExport(args, env());
    expect(exit.code).toBe(2);
    expect(exit.stdout).toBe("");
    expect(exit.stderr).toContain(message);
    expect(exit.stderr).toContain("usage: npm run export");
  });

  it("exits 2 when Redis cannot be reached or the file cannot be written, leaving no file behind", async () => {
    const port = await findFreePort();
    const out = join(dir.path, "unreachable.csv");
    const down = await runExport(["--account", "acme", "--out", out], { CREDITD_REDIS_URL: `redis://127.0.0.1:${port}` });
    expect(down.code).toBe(2);
    expect(down.stderr).toContain(`cannot connect to Redis at redis://127.0.0.1:${port}`);
    const missing = await runExport(["--account", "acme", "--out", join(dir.path, "no-such-dir", "x.csv")], env());
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("cannot write");
    expect((await readdir(dir.path)).filter((f) => f !== "acme.csv")).toEqual([]);
  });

  it("peak memory (RSS of the process) exporting 100,000 ledger entries is that of exporting 10,000", async () => {
    const bulk = harness(client);
    try {
      await bulk.grant("bulk", 1_000_000);
      const first = await bulkCycles(bulk, redis.url, "bulk", 50_000);
      const bulkEnv = { CREDITD_REDIS_URL: redis.url, CREDITD_KEY_PREFIX: bulk.prefix };
      const measure = async (extra: string[]) => {
        const out = join(dir.path, `bulk-${extra.length}.csv`);
        const started = Date.now();
        // A hard cap on the V8 heap: an export that kept its records (or its output) would die of it long before
        // 100,000 entries. RSS alone is a weak witness on a loaded machine: the collector runs late under fast
        // allocation, so the peak moves by tens of MB from run to run whatever the program keeps.
        const exit = await runExport(["--account", "bulk", "--out", out, ...extra], bulkEnv, [
          `--max-old-space-size=${HEAP_CAP_MB}`,
          "--import",
          MAX_RSS_HOOK,
        ]);
        expect(exit.code, exit.stderr).toBe(0);
        const maxRssMb = Number(/maxrss_kb=(\d+)/.exec(exit.stderr)?.[1]) / 1024;
        const bytes = (await stat(out)).size;
        return { maxRssMb, bytes, ms: Date.now() - started, summary: exit.stderr.split("\n")[0] };
      };
      // The first 5 blocks of 1,000 cycles: 10,000 entries (and the 3 before them).
      const small = await measure(["--to", new Date(first + 5 * 1000).toISOString()]);
      const large = await measure([]);
      console.log(JSON.stringify({ small, large }, null, 1));
      expect(small.summary).toContain("5001 records");
      expect(large.summary).toContain("50001 records");
      // The process keeps one batch of 1,000 entries and one chunk of text at a time, a few MB. Keeping the records
      // it exported would cost tens of MB more for the 45,000 more rows (each record, with its receipt parsed, is
      // several times its 130-byte CSV line): past the heap cap. The peak RSS is reported, with a loose bound.
      expect(large.bytes - small.bytes).toBeGreaterThan(5 * 1024 * 1024);
      expect(large.maxRssMb - small.maxRssMb).toBeLessThan(64);
    } finally {
      await bulk.close();
    }
  }, 120_000);
});
