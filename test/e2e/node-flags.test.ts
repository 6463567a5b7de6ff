// The Node flags creditd runs with in production are written twice: package.json's start script (`npm start`, and
// the bench, which reads them from there) and the container command of deploy/sidecar.yaml. They must agree, and
// Node must accept them: a misspelt V8 flag makes `node` exit before creditd starts.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { beforeAll, describe, expect, it } from "vitest";
import { CreditService } from "../../src/gen/creditd/v1/credit_service_pb.js";
import { AdminService } from "../../src/gen/creditd/v1/admin_service_pb.js";
import { BucketKind } from "../../src/gen/creditd/v1/types_pb.js";
import { useTestRedis } from "../support/redis.js";
import { ensureBuilt, startServer } from "../support/server-process.js";
import { CREDIT, grpcClient, uniquePrefix, unary } from "./clients.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** The flags between `node` and `dist/main.js` in package.json's start script. */
function startScriptFlags(): string[] {
  const start = (JSON.parse(readFileSync(`${ROOT}package.json`, "utf8")) as { scripts: Record<string, string> }).scripts["start"]!;
  const m = / node ((?:--\S+ )*)dist\/main\.js/.exec(start);
  expect(m, `package.json start runs "node [--flags] dist/main.js": ${start}`).not.toBeNull();
  return m![1]!.split(" ").filter(Boolean);
}

/** The creditd container's command in deploy/sidecar.yaml. */
function sidecarCommand(): string[] {
  const doc = parse(readFileSync(`${ROOT}deploy/sidecar.yaml`, "utf8")) as {
    spec: { template: { spec: { containers: { name: string; command?: string[] }[] } } };
  };
  const c = doc.spec.template.spec.containers.find((x) => x.name === "creditd");
  expect(c?.command, "deploy/sidecar.yaml has a creditd container with a command").toBeDefined();
  return c!.command!;
}

describe("production Node flags", () => {
  it("package.json's start script and deploy/sidecar.yaml run dist/main.js with the same flags", () => {
    const flags = startScriptFlags();
    expect(sidecarCommand()).toEqual(["node", ...flags, "dist/main.js"]);
    // The old generation's first limit (bench/README.md: what 1 MB prompts' garbage does to small calls' p99).
    expect(flags.find((f) => f.startsWith("--initial-old-space-size="))).toMatch(/^--initial-old-space-size=[1-9]\d*$/);
  });

  describe("creditd started with them", () => {
    beforeAll(ensureBuilt, 180_000);
    const redis = useTestRedis();

    it("serves a Reserve", async () => {
      const server = await startServer({
        nodeArgs: startScriptFlags(),
        env: { CREDITD_REDIS_URL: redis.server.url, CREDITD_KEY_PREFIX: uniquePrefix("flags"), CREDITD_SWEEP_INTERVAL_SECONDS: "0" },
      });
      const admin = grpcClient(AdminService, server.grpcAddr);
      const credit = grpcClient(CreditService, server.grpcAddr);
      try {
        await unary(admin, AdminService.method.grant, { accountId: "acme", grantId: "g1", amountMicros: 5n * CREDIT, kind: BucketKind.TOPUP });
        const r = await unary(credit, CreditService.method.reserve, { accountId: "acme", requestId: "r1", cost: { case: "amountMicros", value: 2n * CREDIT } });
        expect(r.heldMicros).toBe(2n * CREDIT);
        expect(r.availableMicros).toBe(3n * CREDIT);
        expect(readFileSync(`/proc/${server.pid}/cmdline`, "utf8").split("\0")).toEqual(expect.arrayContaining(startScriptFlags()));
      } finally {
        admin.close();
        credit.close();
        await server.stop();
      }
    }, 60_000);
  });
});
