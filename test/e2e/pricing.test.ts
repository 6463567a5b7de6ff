// Pricing end to end (issue 3): the real server process with a catalog file, called over Connect JSON and gRPC:
// Estimate, priced Reserve, Settle with usage and its receipt, GetCatalog, bad input, and catalog reload (file
// change, a bad file refused, SIGHUP) with holds in flight keeping the version they were priced with.
import { createHash } from "node:crypto";
import { link, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type Client, status as GrpcStatus } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../src/gen/creditd/v1/admin_service_pb.js";
import { CreditService } from "../../src/gen/creditd/v1/credit_service_pb.js";
import { BucketKind } from "../../src/gen/creditd/v1/types_pb.js";
import { type TestRedis, startTestRedis } from "../support/redis.js";
import { ROOT, type ServerProcess, startServer, tempDir, waitFor } from "../support/server-process.js";
import { CREDIT, grpcClient, okJson, postJson, serviceError, statusDetails, uniquePrefix, unary } from "./clients.js";

const CREDIT_SVC = "creditd.v1.CreditService";
const ADMIN_SVC = "creditd.v1.AdminService";
const LANDING = join(ROOT, "examples", "catalogs", "landing-page-builder.yaml");
const CHATBOT = join(ROOT, "examples", "catalogs", "chatbot-platform.yaml");

/** A catalog's version as documented: the first 16 hex digits of the SHA-256 of the file's bytes. */
function versionOf(source: string): string {
  return createHash("sha256").update(source).digest("hex").slice(0, 16);
}

/** The landing-page-builder catalog with section.generate at another price (in whole credits). */
function withSectionPrice(source: string, credits: string): string {
  const changed = source.replace(/(section\.generate:\n(?:[ \t]+.*\n)*?[ \t]+price: )10\b/, `$1${credits}`);
  if (changed === source) throw new Error("section.generate's price line not found in the catalog");
  return changed;
}

let redis: TestRedis;

beforeAll(async () => {
  redis = await startTestRedis();
}, 60_000);

afterAll(async () => {
  await redis?.stop();
});

async function stopCleanly(server: ServerProcess | undefined): Promise<void> {
  const exit = await server?.stop();
  expect(exit?.code, exit && `${exit.stdout}${exit.stderr}`).toBe(0);
}

describe("e2e pricing: HTTP JSON with the landing-page-builder catalog", () => {
  let server: ServerProcess;

  beforeAll(async () => {
    server = await startServer({
      env: { CREDITD_REDIS_URL: redis.url, CREDITD_KEY_PREFIX: uniquePrefix("price-http"), CREDITD_CATALOG: LANDING },
    });
  }, 180_000);

  afterAll(() => stopCleanly(server));

  it("GetCatalog shows the file: its name, path, source text and version", async () => {
    const source = await readFile(LANDING, "utf8");
    const catalog = await okJson(server.httpUrl, `${CREDIT_SVC}/GetCatalog`, {});
    expect(catalog).toMatchObject({ name: "Landing page builder", path: LANDING, source, version: versionOf(source) });
  });

  it("GetCatalog says when the catalog was loaded (loaded_at)", async () => {
    const catalog = await okJson(server.httpUrl, `${CREDIT_SVC}/GetCatalog`, {});
    expect(catalog["loadedAt"]).toEqual(expect.any(String));
    const loadedAt = Date.parse(String(catalog["loadedAt"]));
    expect(loadedAt).toBeGreaterThan(Date.now() - 120_000);
    expect(loadedAt).toBeLessThanOrEqual(Date.now());
  });

  it("Estimate prices the document's first worked example at exactly 205 credits", async () => {
    const requests = [
      ...Array.from({ length: 10 }, () => ({ operation: "section.generate" })),
      ...Array.from({ length: 15 }, () => ({ operation: "content.rewrite" })),
      ...Array.from({ length: 3 }, () => ({ operation: "image.generate", image: { width: 1024, height: 1024 } })),
    ];
    const reply = await okJson(server.httpUrl, `${CREDIT_SVC}/Estimate`, { requests });
    expect(reply["totalMicros"]).toBe(String(205n * CREDIT));
    const items = reply["items"] as Array<{ receipt: { totalMicros: string } }>;
    expect(items).toHaveLength(28);
    expect(items.map((i) => i.receipt.totalMicros)).toEqual([
      ...Array<string>(10).fill("10000000"),
      ...Array<string>(15).fill("1000000"),
      ...Array<string>(3).fill("30000000"),
    ]);

    // The three images as one request of count 3 cost the same.
    const batched = await okJson(server.httpUrl, `${CREDIT_SVC}/Estimate`, {
      requests: [
        ...requests.slice(0, 25),
        { operation: "image.generate", image: { width: 1024, height: 1024, count: 3 } },
      ],
    });
    expect(batched["totalMicros"]).toBe(String(205n * CREDIT));
  });

  it("Reserve priced holds the operation's price with an estimate; Settle with usage charges it with a receipt", async () => {
    const url = server.httpUrl;
    await okJson(url, `${ADMIN_SVC}/Grant`, {
      accountId: "lpb",
      grantId: "g1",
      amountMicros: String(1000n * CREDIT),
      kind: "BUCKET_KIND_TOPUP",
    });
    const { version } = (await okJson(url, `${CREDIT_SVC}/GetCatalog`, {})) as { version: string };

    const reserved = await okJson(url, `${CREDIT_SVC}/Reserve`, {
      accountId: "lpb",
      requestId: "sec-1",
      priced: { operation: "section.generate" },
    });
    expect(reserved).toMatchObject({
      reservationId: "lpb:sec-1",
      heldMicros: "10000000",
      availableMicros: "990000000",
      replayed: false,
      estimate: { totalMicros: "10000000", catalogVersion: version },
    });
    const estimate = reserved["estimate"] as { items: Array<Record<string, unknown>> };
    expect(estimate.items.length).toBeGreaterThan(0);
    expect(estimate.items.map((i) => i["subtotalMicros"])).toContain("10000000");

    const settled = await okJson(url, `${CREDIT_SVC}/Settle`, { reservationId: "lpb:sec-1", usage: {} });
    expect(settled).toMatchObject({
      chargedMicros: "10000000",
      availableMicros: "990000000",
      replayed: false,
      receipt: { totalMicros: "10000000", catalogVersion: version },
    });
    // released is 0 and so absent from proto3 JSON
    expect(settled["releasedMicros"] ?? "0").toBe("0");
    const receipt = settled["receipt"] as { items: Array<Record<string, unknown>> };
    expect(receipt.items.map((i) => i["subtotalMicros"])).toContain("10000000");

    const balance = await okJson(url, `${CREDIT_SVC}/GetBalance`, { accountId: "lpb" });
    expect(balance).toMatchObject({ availableMicros: "990000000", chargedMicros: "10000000", grantedMicros: "1000000000" });
    expect(balance["heldMicros"] ?? "0").toBe("0");
  });

  it("refuses an unknown operation with invalid_argument (HTTP 400) naming priced.operation; nothing held", async () => {
    const url = server.httpUrl;
    await okJson(url, `${ADMIN_SVC}/Grant`, { accountId: "lpb-bad", grantId: "g1", amountMicros: "50000000", kind: "BUCKET_KIND_TOPUP" });
    const reply = await postJson(url, `${CREDIT_SVC}/Reserve`, {
      accountId: "lpb-bad",
      requestId: "nope-1",
      priced: { operation: "section.destroy" },
    });
    expect(reply.status).toBe(400);
    expect(reply.body["code"]).toBe("invalid_argument");
    expect(String(reply.body["message"])).toMatch(/^priced\.operation: /);
    const details = reply.body["details"] as Array<{ type: string; debug: { reason: string; metadata: Record<string, string> } }>;
    expect(details[0]).toMatchObject({ type: "google.rpc.ErrorInfo", debug: { reason: "INVALID_FIELD", metadata: { field: "priced.operation" } } });

    const balance = await okJson(url, `${CREDIT_SVC}/GetBalance`, { accountId: "lpb-bad" });
    expect(balance).toMatchObject({ availableMicros: "50000000" });
    expect(balance["heldMicros"] ?? "0").toBe("0");
  });
});

describe("e2e pricing: gRPC with the chatbot-platform catalog", () => {
  let server: ServerProcess;
  let credit: Client;
  let admin: Client;

  beforeAll(async () => {
    server = await startServer({
      env: {
        CREDITD_REDIS_URL: redis.url,
        CREDITD_KEY_PREFIX: uniquePrefix("price-grpc"),
        CREDITD_CATALOG: CHATBOT,
        CREDITD_MAX_PROMPT_BYTES: "1024",
      },
    });
    credit = grpcClient(CreditService, server.grpcAddr);
    admin = grpcClient(AdminService, server.grpcAddr);
  }, 180_000);

  afterAll(async () => {
    credit?.close();
    admin?.close();
    await stopCleanly(server);
  });

  it("prices a chat by tokens: default output cap, o200k_base, usage-based charge, replayed receipt", async () => {
    const { version } = await unary(credit, CreditService.method.getCatalog, {});
    expect(version).toBe(versionOf(await readFile(CHATBOT, "utf8")));
    await unary(admin, AdminService.method.grant, {
      accountId: "bot",
      grantId: "g1",
      amountMicros: 100n * CREDIT,
      kind: BucketKind.TOPUP,
    });

    const reserved = await unary(credit, CreditService.method.reserve, {
      accountId: "bot",
      requestId: "chat-1",
      cost: {
        case: "priced",
        value: {
          operation: "chat",
          model: "gpt-4o",
          input: { case: "text", value: "Write a haiku about credits, sidecars and Redis hash slots." },
        },
      },
    });
    expect(reserved.maxOutputTokens).toBe(1024n);
    expect(reserved.estimate?.tokenizer).toBe("o200k_base");
    expect(reserved.estimate?.estimated).toBe(false);
    expect(reserved.estimate?.catalogVersion).toBe(version);
    // gpt-4o: 250 credits per 1M input tokens, 1000 per 1M output tokens = 250 and 1000 micros per token.
    const inputLine = reserved.estimate!.items.find((i) => /input/i.test(i.unit) || /input/i.test(i.description));
    expect(inputLine, JSON.stringify(reserved.estimate!.items, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v))).toBeDefined();
    const inputTokens = inputLine!.quantity;
    expect(inputTokens).toBeGreaterThan(5n);
    expect(inputTokens).toBeLessThan(40n);
    const roundUp = (micros: bigint): bigint => ((micros + 9_999n) / 10_000n) * 10_000n; // rounding: up to 0.01 credit
    expect(reserved.heldMicros).toBe(roundUp(inputTokens * 250n + 1024n * 1000n));
    expect(reserved.estimate!.totalMicros).toBe(reserved.heldMicros);

    const settle = () =>
      unary(credit, CreditService.method.settle, {
        reservationId: reserved.reservationId,
        cost: { case: "usage", value: { outputTokens: 100n } },
      });
    const settled = await settle();
    const expectedCharge = roundUp(inputTokens * 250n + 100n * 1000n);
    expect(settled.chargedMicros).toBe(expectedCharge);
    expect(settled.chargedMicros).toBeLessThan(reserved.heldMicros);
    expect(settled.releasedMicros).toBe(reserved.heldMicros - settled.chargedMicros);
    expect(settled.availableMicros).toBe(100n * CREDIT - settled.chargedMicros);
    expect(settled.replayed).toBe(false);
    expect(settled.receipt).toBeDefined();
    expect(settled.receipt!.totalMicros).toBe(expectedCharge);
    expect(settled.receipt!.catalogVersion).toBe(version);
    expect(settled.receipt!.tokenizer).toBe("o200k_base");
    const outputLine = settled.receipt!.items.find((i) => i.quantity === 100n);
    expect(outputLine).toMatchObject({ unit: "token", unitPriceMicros: 1000n * CREDIT, per: 1_000_000n, subtotalMicros: 100_000n }); // 1000 credits per 1M tokens
    expect(settled.receipt!.items.find((i) => i.quantity === inputTokens)).toMatchObject({
      unit: "token",
      unitPriceMicros: 250n * CREDIT,
      per: 1_000_000n,
      subtotalMicros: inputTokens * 250n,
    });

    // A repeat of the Settle returns the first outcome, receipt and all.
    const replay = await settle();
    expect(replay.replayed).toBe(true);
    expect(replay.chargedMicros).toBe(settled.chargedMicros);
    expect(replay.releasedMicros).toBe(settled.releasedMicros);
    expect(replay.availableMicros).toBe(settled.availableMicros);
    expect(replay.receipt).toEqual(settled.receipt);

    const balance = await unary(credit, CreditService.method.getBalance, { accountId: "bot" });
    expect(balance).toMatchObject({ heldMicros: 0n, chargedMicros: expectedCharge, availableMicros: 100n * CREDIT - expectedCharge });
  });

  it("a replayed Settle returns exactly the first receipt, line item units included", async () => {
    await unary(admin, AdminService.method.grant, { accountId: "bot-replay", grantId: "g1", amountMicros: 10n * CREDIT, kind: BucketKind.TOPUP });
    const reserved = await unary(credit, CreditService.method.reserve, {
      accountId: "bot-replay",
      requestId: "chat-r",
      cost: { case: "priced", value: { operation: "chat", model: "gpt-4o", input: { case: "text", value: "hello" } } },
    });
    const settle = () =>
      unary(credit, CreditService.method.settle, { reservationId: reserved.reservationId, cost: { case: "usage", value: { outputTokens: 7n } } });
    const first = await settle();
    expect(first.receipt?.items.some((i) => i.unit === "token")).toBe(true);
    const replay = await settle();
    expect(replay.replayed).toBe(true);
    expect(replay.receipt).toEqual(first.receipt);
  });

  it("refuses a prompt above CREDITD_MAX_PROMPT_BYTES with INVALID_ARGUMENT naming priced.text; nothing held", async () => {
    await unary(admin, AdminService.method.grant, { accountId: "bot-big", grantId: "g1", amountMicros: 100n * CREDIT, kind: BucketKind.TOPUP });
    const err = await serviceError(
      unary(credit, CreditService.method.reserve, {
        accountId: "bot-big",
        requestId: "big-1",
        cost: { case: "priced", value: { operation: "chat", model: "gpt-4o", input: { case: "text", value: "x".repeat(1025) } } },
      }),
    );
    expect(err.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(err.details).toMatch(/^priced\.text: /);
    const { errorInfo } = statusDetails(err);
    expect(errorInfo?.reason).toBe("INVALID_FIELD");
    expect(errorInfo?.metadata["field"]).toBe("priced.text");

    // Exactly at the limit is counted and held.
    const ok = await unary(credit, CreditService.method.reserve, {
      accountId: "bot-big",
      requestId: "big-2",
      cost: { case: "priced", value: { operation: "chat", model: "gpt-4o", input: { case: "text", value: "x".repeat(1024) } } },
    });
    expect(ok.heldMicros).toBeGreaterThan(0n);

    const balance = await unary(credit, CreditService.method.getBalance, { accountId: "bot-big" });
    expect(balance.heldMicros).toBe(ok.heldMicros);
  });
});

describe("e2e pricing: catalog reload (file change, bad file, SIGHUP)", () => {
  let server: ServerProcess;
  let dir: { path: string; remove: () => Promise<void> };
  let catalogPath: string;
  /** A second name (hard link) of the catalog file in a folder the server does not watch. */
  let unwatchedName: string;
  let original: string;

  beforeAll(async () => {
    dir = await tempDir("creditd-e2e-catalog");
    catalogPath = join(dir.path, "watched", "catalog.yaml");
    unwatchedName = join(dir.path, "elsewhere", "catalog.yaml");
    original = await readFile(LANDING, "utf8");
    await mkdir(join(dir.path, "watched"));
    await mkdir(join(dir.path, "elsewhere"));
    await writeFile(catalogPath, original);
    await link(catalogPath, unwatchedName);
    server = await startServer({
      env: { CREDITD_REDIS_URL: redis.url, CREDITD_KEY_PREFIX: uniquePrefix("price-reload"), CREDITD_CATALOG: catalogPath },
    });
  }, 180_000);

  afterAll(async () => {
    await stopCleanly(server);
    await dir?.remove();
  });

  const catalogVersion = async (): Promise<string> =>
    String((await okJson(server.httpUrl, `${CREDIT_SVC}/GetCatalog`, {}))["version"]);

  const reserveSection = (requestId: string) =>
    okJson(server.httpUrl, `${CREDIT_SVC}/Reserve`, { accountId: "reload", requestId, priced: { operation: "section.generate" } });

  it("holds keep their catalog version across a reload; a bad file is refused; SIGHUP reloads", async () => {
    const url = server.httpUrl;
    const v1 = versionOf(original);
    expect(await catalogVersion()).toBe(v1);
    await okJson(url, `${ADMIN_SVC}/Grant`, { accountId: "reload", grantId: "g1", amountMicros: String(1000n * CREDIT), kind: "BUCKET_KIND_TOPUP" });

    const first = await reserveSection("r1");
    expect(first).toMatchObject({ heldMicros: "10000000", estimate: { catalogVersion: v1 } });

    // The file changes: section.generate 10 → 20. The watcher picks it up.
    const twenty = withSectionPrice(original, "20");
    const v2 = versionOf(twenty);
    await writeFile(catalogPath, twenty);
    await waitFor("the catalog reload after the file changed", async () => (await catalogVersion()) === v2, 5000);
    // Log lines are written in batches (at most a second late when traffic is low).
    await waitFor("the reload's log line", () =>
      server.logs().some((l) => l.msg === "catalog loaded" && l["catalog_version"] === v2 && l["previous_version"] === v1),
    );

    const second = await reserveSection("r2");
    expect(second).toMatchObject({ heldMicros: "20000000", estimate: { catalogVersion: v2 } });

    // The first hold settles at the price it was held with (version 1), the second at version 2's.
    const settledFirst = await okJson(url, `${CREDIT_SVC}/Settle`, { reservationId: "reload:r1", usage: {} });
    expect(settledFirst).toMatchObject({ chargedMicros: "10000000", receipt: { totalMicros: "10000000", catalogVersion: v1 } });
    const settledSecond = await okJson(url, `${CREDIT_SVC}/Settle`, { reservationId: "reload:r2", usage: {} });
    expect(settledSecond).toMatchObject({ chargedMicros: "20000000", receipt: { totalMicros: "20000000", catalogVersion: v2 } });

    // A bad catalog (a negative price) is refused and logged; version 2 keeps serving.
    const errorsBefore = server.logs().filter((l) => (l.level ?? 0) >= 50).length;
    await writeFile(catalogPath, withSectionPrice(original, "-5"));
    await waitFor(
      "an error line about the refused catalog",
      () => server.logs().filter((l) => (l.level ?? 0) >= 50).length > errorsBefore,
      5000,
    );
    const refused = server.logs().filter((l) => (l.level ?? 0) >= 50).slice(errorsBefore);
    expect(refused[0]?.msg, JSON.stringify(refused)).toMatch(/catalog/);
    expect(refused[0]?.["catalog_path"]).toBe(catalogPath);
    expect(refused[0]?.["problems"]).toEqual(['operations["section.generate"].price: must be ≥ 0']);
    expect(refused[0]?.["current_version"]).toBe(v2);
    expect(await catalogVersion()).toBe(v2);
    const third = await reserveSection("r3");
    expect(third).toMatchObject({ heldMicros: "20000000", estimate: { catalogVersion: v2 } });

    // A valid, different catalog written through a name the watcher cannot see (the server watches the catalog's
    // folder; inotify reports a write to the folder the file was opened through): nothing changes until SIGHUP.
    const thirty = withSectionPrice(original, "30");
    const v3 = versionOf(thirty);
    await writeFile(unwatchedName, thirty);
    expect(await readFile(catalogPath, "utf8")).toBe(thirty); // the same file
    await sleep(600); // longer than the watcher's debounce
    expect(await catalogVersion()).toBe(v2);
    server.kill("SIGHUP");
    await waitFor("the catalog reload on SIGHUP", async () => (await catalogVersion()) === v3, 5000);
    const fourth = await reserveSection("r4");
    expect(fourth).toMatchObject({ heldMicros: "30000000", estimate: { catalogVersion: v3 } });

    // The hold made under version 2 during the bad-file period still settles at 20.
    const settledThird = await okJson(url, `${CREDIT_SVC}/Settle`, { reservationId: "reload:r3", usage: {} });
    expect(settledThird).toMatchObject({ chargedMicros: "20000000", receipt: { catalogVersion: v2 } });
  });
});
