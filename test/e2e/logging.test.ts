// The log is written asynchronously in batches (src/main.ts): no line may be lost when the process stops, whether
// by SIGTERM right after a burst of calls or by an error nobody caught.
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../src/gen/creditd/v1/admin_service_pb.js";
import { CreditService } from "../../src/gen/creditd/v1/credit_service_pb.js";
import { BucketKind } from "../../src/gen/creditd/v1/types_pb.js";
import { type TestRedis, startTestRedis } from "../support/redis.js";
import { type LogLine, type ServerProcess, ensureBuilt, jsonLines, startServer } from "../support/server-process.js";
import { CREDIT, grpcClient, uniquePrefix, unary } from "./clients.js";

const CALLS = 400;
const CRASH_HOOK = fileURLToPath(new URL("./crash-hook.mjs", import.meta.url));

/** CALLS Reserves (distinct request ids, 32 in flight) on a granted account; returns their request ids. */
async function burst(server: ServerProcess, tag: string): Promise<string[]> {
  const credit = grpcClient(CreditService, server.grpcAddr);
  const admin = grpcClient(AdminService, server.grpcAddr);
  try {
    await unary(admin, AdminService.method.grant, { accountId: "acme", grantId: `g-${tag}`, amountMicros: 10_000n * CREDIT, kind: BucketKind.TOPUP });
    const ids = Array.from({ length: CALLS }, (_, i) => `${tag}-${i}`);
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < ids.length) {
          const requestId = ids[next++]!;
          await unary(credit, CreditService.method.reserve, { accountId: "acme", requestId, cost: { case: "amountMicros", value: CREDIT } });
        }
      }),
    );
    return ids;
  } finally {
    credit.close();
    admin.close();
  }
}

/** The request ids of the Reserve lines of a log, and every line is whole JSON. */
function reserveLines(stdout: string): { lines: LogLine[]; ids: string[] } {
  const raw = stdout.split("\n").filter((l) => l !== "");
  const lines = jsonLines(stdout);
  expect(lines.length, "every line of the log is one whole JSON object").toBe(raw.length);
  const ids = lines.filter((l) => l.msg === "rpc" && l["rpc"] === "creditd.v1.CreditService/Reserve").map((l) => String(l["request_id"]));
  return { lines, ids };
}

describe("e2e: no log line is lost at exit", () => {
  beforeAll(ensureBuilt, 180_000);
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startTestRedis();
  }, 30_000);
  afterAll(async () => {
    await redis?.stop();
  });

  it("SIGTERM right after a burst of calls: every call's line is written, before the last line", async () => {
    const server = await startServer({
      env: { CREDITD_REDIS_URL: redis.url, CREDITD_KEY_PREFIX: uniquePrefix("logterm"), CREDITD_SWEEP_INTERVAL_SECONDS: "0" },
    });
    const sent = await burst(server, "term");
    const exit = await server.stop();
    expect(exit.code, exit.stderr).toBe(0);
    const { lines, ids } = reserveLines(exit.stdout);
    expect(new Set(ids)).toEqual(new Set(sent));
    expect(ids).toHaveLength(sent.length);
    expect(lines.at(-1)?.msg).toBe("stopped");
  }, 60_000);

  it("an uncaught error: every line before it is written, then the error at fatal level, and the exit code is 1", async () => {
    const server = await startServer({
      env: {
        CREDITD_REDIS_URL: redis.url,
        CREDITD_KEY_PREFIX: uniquePrefix("logfatal"),
        CREDITD_SWEEP_INTERVAL_SECONDS: "0",
        NODE_OPTIONS: `--import=${CRASH_HOOK}`,
      },
    });
    try {
      const sent = await burst(server, "fatal");
      server.kill("SIGUSR2");
      const exit = await server.exited;
      expect(exit.code, exit.stderr).toBe(1);
      const { lines, ids } = reserveLines(exit.stdout);
      expect(new Set(ids)).toEqual(new Set(sent));
      const last = lines.at(-1)!;
      expect(last.level).toBe(60); // pino's fatal
      expect(last.msg).toBe("fatal error, exiting");
      expect((last["err"] as { message?: string }).message).toBe("boom from crash-hook");
    } finally {
      await server.stop();
    }
  }, 60_000);
});
