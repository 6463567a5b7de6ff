import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  ConfigError,
  loadConfig,
  redactConfig,
  renderSettingsMarkdown,
  settingsTable,
  splitHostPort,
} from "../../src/config/settings.js";

const cwd = "/srv/app";

function load(env: Record<string, string>) {
  return loadConfig(env, cwd);
}

function errorOf(env: Record<string, string>): ConfigError {
  try {
    load(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

const tempDirs: string[] = [];
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

function configFile(content: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), "creditd-config-"));
  tempDirs.push(dir);
  const path = join(dir, "creditd.json");
  writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content));
  return path;
}

describe("loadConfig defaults", () => {
  it("gives every default with an empty environment", () => {
    const { config, warnings } = load({});
    expect(config).toEqual({
      grpcAddr: "127.0.0.1:50051",
      httpAddr: "127.0.0.1:8080",
      redisUrl: undefined,
      redisClusterNodes: undefined,
      dataDir: "/srv/app/.creditd",
      keyPrefix: "creditd",
      holdTtlDefaultSeconds: 600,
      holdTtlMaxSeconds: 86400,
      idempotencyTtlSeconds: 86400,
      ledgerMaxEntries: 100000,
      ledgerRetentionDays: 0,
      usageSummaryDays: 400,
      sweepIntervalSeconds: 15,
      shutdownTimeoutSeconds: 10,
      catalog: undefined,
      maxPromptBytes: 4194304,
      countInlineMaxBytes: 16384,
      countWorkers: 0,
      countCacheEntries: 50000,
      webhookUrl: undefined,
      webhookSecret: undefined,
      webhookMaxAttempts: 20,
      webhookTimeoutMs: 5000,
      webhookBackoffMs: 1000,
      logLevel: "info",
      configFile: undefined,
    });
    expect(warnings).toEqual([]);
    expect(Object.isFrozen(config)).toBe(true);
  });

  it("ignores variables without the CREDITD_ prefix and treats empty ones as unset", () => {
    const { config, warnings } = load({ PATH: "/bin", HOME: "/root", CREDITD_KEY_PREFIX: "  ", CREDITD_REDIS_URL: "" });
    expect(config.keyPrefix).toBe("creditd");
    expect(config.redisUrl).toBeUndefined();
    expect(warnings).toEqual([]);
  });
});

describe("loadConfig values", () => {
  it("parses every setting", () => {
    const { config } = load({
      CREDITD_GRPC_ADDR: "0.0.0.0:0",
      CREDITD_HTTP_ADDR: "[::1]:9090",
      CREDITD_REDIS_CLUSTER_NODES: "10.0.0.1:7000, redis-b.internal:7001,[::1]:7002",
      CREDITD_DATA_DIR: "/var/lib/creditd",
      CREDITD_KEY_PREFIX: "prod_eu-1",
      CREDITD_HOLD_TTL_DEFAULT_SECONDS: "30",
      CREDITD_HOLD_TTL_MAX_SECONDS: "604800",
      CREDITD_IDEMPOTENCY_TTL_SECONDS: "604800",
      CREDITD_LEDGER_MAX_ENTRIES: "0",
      CREDITD_LEDGER_RETENTION_DAYS: "90",
      CREDITD_USAGE_SUMMARY_DAYS: "0",
      CREDITD_SWEEP_INTERVAL_SECONDS: "0",
      CREDITD_SHUTDOWN_TIMEOUT_SECONDS: "30",
      CREDITD_LOG_LEVEL: "debug",
    });
    expect(config).toMatchObject({
      grpcAddr: "0.0.0.0:0",
      httpAddr: "[::1]:9090",
      redisUrl: undefined,
      redisClusterNodes: [
        { host: "10.0.0.1", port: 7000 },
        { host: "redis-b.internal", port: 7001 },
        { host: "::1", port: 7002 },
      ],
      dataDir: "/var/lib/creditd",
      keyPrefix: "prod_eu-1",
      holdTtlDefaultSeconds: 30,
      holdTtlMaxSeconds: 604800,
      idempotencyTtlSeconds: 604800,
      ledgerMaxEntries: 0,
      ledgerRetentionDays: 90,
      usageSummaryDays: 0,
      sweepIntervalSeconds: 0,
      shutdownTimeoutSeconds: 30,
      logLevel: "debug",
    });
    expect(Object.isFrozen(config.redisClusterNodes)).toBe(true);
    expect(Object.isFrozen(config.redisClusterNodes![0])).toBe(true);
  });

  it("accepts redis:// and rediss:// URLs", () => {
    expect(load({ CREDITD_REDIS_URL: "redis://localhost:6379/0" }).config.redisUrl).toBe("redis://localhost:6379/0");
    expect(load({ CREDITD_REDIS_URL: "rediss://user:pw@cache.example.com:6380" }).config.redisUrl).toBe(
      "rediss://user:pw@cache.example.com:6380",
    );
  });

  it("resolves a relative data dir against cwd", () => {
    expect(load({ CREDITD_DATA_DIR: "data/x" }).config.dataDir).toBe("/srv/app/data/x");
  });

  it("redacts the Redis password for logging", () => {
    const { config } = load({ CREDITD_REDIS_URL: "redis://user:secret@h:6379" });
    expect(redactConfig(config).redisUrl).toBe("redis://user:***@h:6379");
    expect(JSON.stringify(redactConfig(config))).not.toContain("secret");
  });
});

describe("invalid values name their setting and what is allowed", () => {
  // [env name, bad value, a fragment of the allowed-values text]
  const cases: Array<[string, string, string]> = [
    ["CREDITD_GRPC_ADDR", "localhost", "host:port"],
    ["CREDITD_GRPC_ADDR", "127.0.0.1:65536", "port 0-65535"],
    ["CREDITD_GRPC_ADDR", "::1:80", "[::1]:port"],
    ["CREDITD_HTTP_ADDR", "[nothost]:80", "host:port"],
    ["CREDITD_HTTP_ADDR", "127.0.0.1:-1", "host:port"],
    ["CREDITD_REDIS_URL", "http://localhost:6379", "redis:// or rediss://"],
    ["CREDITD_REDIS_URL", "not a url", "redis:// or rediss://"],
    ["CREDITD_REDIS_CLUSTER_NODES", "10.0.0.1:7000,,10.0.0.2:7000", "comma-separated list of host:port"],
    ["CREDITD_REDIS_CLUSTER_NODES", "10.0.0.1:0", "port 1-65535"],
    ["CREDITD_KEY_PREFIX", "has space", "[A-Za-z0-9_-]"],
    ["CREDITD_KEY_PREFIX", "x".repeat(33), "1-32 characters"],
    ["CREDITD_KEY_PREFIX", "{tag}", "[A-Za-z0-9_-]"],
    ["CREDITD_HOLD_TTL_DEFAULT_SECONDS", "0", "an integer between 1 and 604800"],
    ["CREDITD_HOLD_TTL_MAX_SECONDS", "abc", "an integer between 1 and 604800"],
    ["CREDITD_HOLD_TTL_MAX_SECONDS", "604801", "an integer between 1 and 604800"],
    ["CREDITD_IDEMPOTENCY_TTL_SECONDS", "3599", "an integer between 3600 and"],
    ["CREDITD_LEDGER_MAX_ENTRIES", "-1", "an integer between 0 and"],
    ["CREDITD_LEDGER_MAX_ENTRIES", "1e5", "an integer between 0 and"],
    ["CREDITD_SWEEP_INTERVAL_SECONDS", "1.5", "an integer between 0 and 3600"],
    ["CREDITD_SHUTDOWN_TIMEOUT_SECONDS", "ten", "an integer between 0 and 3600"],
    ["CREDITD_LOG_LEVEL", "verbose", "one of fatal, error, warn, info, debug, trace, silent"],
  ];

  it.each(cases)("%s=%j", (env, value, allowed) => {
    const err = errorOf({ [env]: value });
    expect(err.message.startsWith(`${env}: must be `)).toBe(true);
    expect(err.message).toContain(allowed);
    expect(err.message).toContain(`got ${JSON.stringify(value)}`);
    expect(err.settings).toEqual([env]);
  });

  it("matches the documented message format exactly", () => {
    expect(() => load({ CREDITD_HOLD_TTL_MAX_SECONDS: "abc" })).toThrow(
      new ConfigError([
        {
          settings: ["CREDITD_HOLD_TTL_MAX_SECONDS"],
          message: 'CREDITD_HOLD_TTL_MAX_SECONDS: must be an integer between 1 and 604800, got "abc"',
        },
      ]),
    );
  });

  it("reports every invalid setting at once", () => {
    const err = errorOf({ CREDITD_LOG_LEVEL: "loud", CREDITD_KEY_PREFIX: "a b" });
    expect(err.settings.sort()).toEqual(["CREDITD_KEY_PREFIX", "CREDITD_LOG_LEVEL"]);
    expect(err.message).toContain("CREDITD_LOG_LEVEL: must be");
    expect(err.message).toContain("CREDITD_KEY_PREFIX: must be");
  });

  it("does not echo a Redis password in the error", () => {
    const err = errorOf({ CREDITD_REDIS_URL: "http://user:hunter2@host:6379" });
    expect(err.message).toContain("CREDITD_REDIS_URL");
    expect(err.message).not.toContain("hunter2");
  });

  it("refuses both Redis settings, naming both", () => {
    const err = errorOf({ CREDITD_REDIS_URL: "redis://localhost:6379", CREDITD_REDIS_CLUSTER_NODES: "localhost:7000" });
    expect(err.message).toContain("CREDITD_REDIS_URL");
    expect(err.message).toContain("CREDITD_REDIS_CLUSTER_NODES");
    expect(err.settings.sort()).toEqual(["CREDITD_REDIS_CLUSTER_NODES", "CREDITD_REDIS_URL"]);
  });

  it("refuses a default hold TTL above the maximum, naming both", () => {
    const err = errorOf({ CREDITD_HOLD_TTL_DEFAULT_SECONDS: "7200", CREDITD_HOLD_TTL_MAX_SECONDS: "3600" });
    expect(err.message).toBe(
      "CREDITD_HOLD_TTL_DEFAULT_SECONDS (7200) must be less than or equal to CREDITD_HOLD_TTL_MAX_SECONDS (3600)",
    );
    expect(() => load({ CREDITD_HOLD_TTL_DEFAULT_SECONDS: "3600", CREDITD_HOLD_TTL_MAX_SECONDS: "3600" })).not.toThrow();
  });

  it("warns when idempotency records would expire before the longest hold", () => {
    const { warnings } = load({ CREDITD_HOLD_TTL_MAX_SECONDS: "172800", CREDITD_IDEMPOTENCY_TTL_SECONDS: "86400" });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("CREDITD_IDEMPOTENCY_TTL_SECONDS");
  });
});

describe("unknown CREDITD_* variables", () => {
  it("are returned as warnings, with a suggestion for typos", () => {
    const { warnings } = load({ CREDITD_LOG_LEVLE: "debug", CREDITD_SOMETHING_ELSE_ENTIRELY: "1" });
    expect(warnings).toEqual([
      "unknown environment variable CREDITD_LOG_LEVLE ignored (did you mean CREDITD_LOG_LEVEL?)",
      "unknown environment variable CREDITD_SOMETHING_ELSE_ENTIRELY ignored",
    ]);
  });
});

describe("CREDITD_CONFIG_FILE", () => {
  it("reads string and number values, and the environment overrides the file", () => {
    const path = configFile({
      CREDITD_KEY_PREFIX: "fromfile",
      CREDITD_HOLD_TTL_DEFAULT_SECONDS: 120,
      CREDITD_LOG_LEVEL: "warn",
      CREDITD_REDIS_URL: "redis://file-host:6379",
    });
    const { config } = load({ CREDITD_CONFIG_FILE: path, CREDITD_LOG_LEVEL: "error" });
    expect(config.keyPrefix).toBe("fromfile");
    expect(config.holdTtlDefaultSeconds).toBe(120);
    expect(config.logLevel).toBe("error");
    expect(config.redisUrl).toBe("redis://file-host:6379");
    expect(config.configFile).toBe(path);
  });

  it("resolves a relative path against cwd", () => {
    const path = configFile({ CREDITD_KEY_PREFIX: "rel" });
    const { config } = loadConfig({ CREDITD_CONFIG_FILE: "creditd.json" }, join(path, ".."));
    expect(config.keyPrefix).toBe("rel");
  });

  it("names the setting and the file when a value in the file is invalid", () => {
    const path = configFile({ CREDITD_SWEEP_INTERVAL_SECONDS: -5 });
    const err = errorOf({ CREDITD_CONFIG_FILE: path });
    expect(err.message).toBe(
      `CREDITD_SWEEP_INTERVAL_SECONDS: must be an integer between 0 and 3600, got "-5" (from config file ${path})`,
    );
  });

  it("refuses unknown keys, naming the key", () => {
    const path = configFile({ CREDITD_KEY_PREFIX: "ok", CREDITD_HOLD_TTL_SECOND: 5 });
    const err = errorOf({ CREDITD_CONFIG_FILE: path });
    expect(err.settings).toEqual(["CREDITD_HOLD_TTL_SECOND"]);
    expect(err.message).toContain("CREDITD_HOLD_TTL_SECOND: unknown setting");
  });

  it("refuses values that are neither strings nor numbers", () => {
    const err = errorOf({ CREDITD_CONFIG_FILE: configFile({ CREDITD_LEDGER_MAX_ENTRIES: true }) });
    expect(err.message).toContain("CREDITD_LEDGER_MAX_ENTRIES: must be a string or a number");
  });

  it.each([
    ["a missing file", "/nonexistent/creditd.json", "no such file"],
    ["unparsable JSON", configFile("{ not json"), "is not valid JSON"],
    ["a JSON array", configFile([1, 2]), "must hold a JSON object"],
  ])("names CREDITD_CONFIG_FILE for %s", (_what, path, fragment) => {
    const err = errorOf({ CREDITD_CONFIG_FILE: path });
    expect(err.message.startsWith("CREDITD_CONFIG_FILE: ")).toBe(true);
    expect(err.message).toContain(fragment);
    expect(err.settings).toEqual(["CREDITD_CONFIG_FILE"]);
  });

  it("checks combinations across file and environment", () => {
    const path = configFile({ CREDITD_REDIS_CLUSTER_NODES: "a:1" });
    const err = errorOf({ CREDITD_CONFIG_FILE: path, CREDITD_REDIS_URL: "redis://b:2" });
    expect(err.settings.sort()).toEqual(["CREDITD_REDIS_CLUSTER_NODES", "CREDITD_REDIS_URL"]);
  });
});

describe("settings table", () => {
  it("lists every setting with a default and a description", () => {
    const rows = settingsTable();
    expect(rows.map((r) => r.env)).toEqual([
      "CREDITD_GRPC_ADDR",
      "CREDITD_HTTP_ADDR",
      "CREDITD_REDIS_URL",
      "CREDITD_REDIS_CLUSTER_NODES",
      "CREDITD_DATA_DIR",
      "CREDITD_KEY_PREFIX",
      "CREDITD_HOLD_TTL_DEFAULT_SECONDS",
      "CREDITD_HOLD_TTL_MAX_SECONDS",
      "CREDITD_IDEMPOTENCY_TTL_SECONDS",
      "CREDITD_LEDGER_MAX_ENTRIES",
      "CREDITD_LEDGER_RETENTION_DAYS",
      "CREDITD_USAGE_SUMMARY_DAYS",
      "CREDITD_SWEEP_INTERVAL_SECONDS",
      "CREDITD_SHUTDOWN_TIMEOUT_SECONDS",
      "CREDITD_CATALOG",
      "CREDITD_MAX_PROMPT_BYTES",
      "CREDITD_COUNT_INLINE_MAX_BYTES",
      "CREDITD_COUNT_WORKERS",
      "CREDITD_COUNT_CACHE_ENTRIES",
      "CREDITD_WEBHOOK_URL",
      "CREDITD_WEBHOOK_SECRET",
      "CREDITD_WEBHOOK_MAX_ATTEMPTS",
      "CREDITD_WEBHOOK_TIMEOUT_MS",
      "CREDITD_WEBHOOK_BACKOFF_MS",
      "CREDITD_LOG_LEVEL",
      "CREDITD_CONFIG_FILE",
    ]);
    for (const row of rows) expect(row.description.length).toBeGreaterThan(10);
    expect(rows.find((r) => r.env === "CREDITD_HOLD_TTL_DEFAULT_SECONDS")?.default).toBe("600");
  });

  it("resolves the catalog path against the working directory", () => {
    expect(load({ CREDITD_CATALOG: "examples/catalogs/chatbot-platform.yaml" }).config.catalog).toBe(
      "/srv/app/examples/catalogs/chatbot-platform.yaml",
    );
    expect(() => load({ CREDITD_MAX_PROMPT_BYTES: "12" })).toThrow(/CREDITD_MAX_PROMPT_BYTES: must be an integer between 1024/);
  });

  it("every default in the table loads (the table cannot drift from the parser)", () => {
    const env = Object.fromEntries(settingsTable().filter((r) => r.default !== "").map((r) => [r.env, r.default]));
    expect(load(env).config).toEqual(load({}).config);
  });

  it("renders as a Markdown table", () => {
    const md = renderSettingsMarkdown();
    const lines = md.trimEnd().split("\n");
    expect(lines[0]).toBe("| Variable | Default | Allowed values | Description |");
    expect(lines).toHaveLength(2 + settingsTable().length);
    expect(md).toContain("| `CREDITD_LOG_LEVEL` | `info` |");
    expect(md).toContain("| `CREDITD_REDIS_URL` | (unset) |");
    for (const line of lines) expect(line.split(/(?<!\\)\|/).length).toBe(6);
  });
});

describe("splitHostPort", () => {
  it("splits IPv4, names and bracketed IPv6", () => {
    expect(splitHostPort("127.0.0.1:50051")).toEqual({ host: "127.0.0.1", port: 50051 });
    expect(splitHostPort("localhost:0")).toEqual({ host: "localhost", port: 0 });
    expect(splitHostPort("[::1]:8080")).toEqual({ host: "::1", port: 8080 });
    expect(() => splitHostPort("nope")).toThrow(/host:port/);
  });
});
