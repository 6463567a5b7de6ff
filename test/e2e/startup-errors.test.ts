// Starts that cannot work stop at once, with a message that says what to fix.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureBuilt, runServerToExit, tempDir } from "../support/server-process.js";

describe("e2e: failed starts", () => {
  // Build dist/ here, not inside a test: a build takes longer than a test's timeout.
  beforeAll(ensureBuilt, 180_000);

  let dir: { path: string; remove: () => Promise<void> };

  beforeAll(async () => {
    dir = await tempDir("creditd-e2e-start");
  });

  afterAll(async () => {
    await dir?.remove();
  });

  it("exits non-zero naming the setting when a value is invalid", async () => {
    const exit = await runServerToExit({ CREDITD_HOLD_TTL_MAX_SECONDS: "abc", CREDITD_DATA_DIR: dir.path });
    expect(exit.signal).toBeNull();
    expect(exit.code).toBe(2);
    expect(exit.stderr).toContain("CREDITD_HOLD_TTL_MAX_SECONDS");
    expect(exit.stderr).toContain('"abc"');
    expect(exit.stderr).toMatch(/must be an integer between 1 and \d+/);
    // Nothing was started.
    expect(existsSync(join(dir.path, "local-redis.json"))).toBe(false);
  }, 20_000);

  it("lists every invalid setting at once", async () => {
    const exit = await runServerToExit({
      CREDITD_GRPC_ADDR: "nowhere",
      CREDITD_LOG_LEVEL: "loud",
      CREDITD_DATA_DIR: dir.path,
    });
    expect(exit.code).toBe(2);
    expect(exit.stderr).toContain("CREDITD_GRPC_ADDR");
    expect(exit.stderr).toContain("CREDITD_LOG_LEVEL");
  }, 20_000);

  it("exits non-zero telling what to install or set when redis-server is missing and no Redis is configured", async () => {
    const missing = join(dir.path, "no-such-redis-server");
    const exit = await runServerToExit({ REDIS_SERVER_BIN: missing, CREDITD_DATA_DIR: dir.path });
    expect(exit.signal).toBeNull();
    expect(exit.code).not.toBe(0);
    expect(exit.code).toBe(1);
    expect(exit.stderr).toContain("redis-server not found");
    expect(exit.stderr).toMatch(/install it/);
    expect(exit.stderr).toContain("CREDITD_REDIS_URL");
    expect(exit.stderr).toContain(missing);
    expect(existsSync(join(dir.path, "local-redis.json"))).toBe(false);
  }, 20_000);
});
