// Configuration: read once at start into one typed, frozen object.
//
// Every setting lives in SETTINGS below with its env name, default, allowed values,
// description and parser. Sources, lowest precedence first: built-in defaults, the JSON
// file named by CREDITD_CONFIG_FILE, environment variables. An empty environment variable
// counts as unset, so `CREDITD_REDIS_URL=` in a compose file does not override the file.
// Anything invalid stops the start with a ConfigError naming the setting and what is allowed.

import { readFileSync } from "node:fs";
import { isIPv6 } from "node:net";
import { resolve } from "node:path";
import type { LevelWithSilent } from "pino";

export interface RedisNodeAddress {
  readonly host: string;
  readonly port: number;
}

export interface Config {
  /** gRPC listen address, "host:port" ("[::1]:port" for IPv6). Split it with splitHostPort(). */
  readonly grpcAddr: string;
  /** HTTP (JSON + health) listen address, "host:port" ("[::1]:port" for IPv6). */
  readonly httpAddr: string;
  /** redis:// or rediss:// URL of an existing Redis; undefined when not set. */
  readonly redisUrl: string | undefined;
  /** Seed nodes of an existing Redis Cluster; undefined when not set. */
  readonly redisClusterNodes: ReadonlyArray<RedisNodeAddress> | undefined;
  /** Absolute path of the folder holding the local redis-server's data. */
  readonly dataDir: string;
  readonly keyPrefix: string;
  readonly holdTtlDefaultSeconds: number;
  readonly holdTtlMaxSeconds: number;
  readonly idempotencyTtlSeconds: number;
  /** 0 = unlimited. */
  readonly ledgerMaxEntries: number;
  /** 0 = ledger entries are kept whatever their age (the size cap still applies). */
  readonly ledgerRetentionDays: number;
  /** Days of per-day usage aggregates kept per account; 0 = every day. */
  readonly usageSummaryDays: number;
  /** 0 = background sweeper disabled. */
  readonly sweepIntervalSeconds: number;
  readonly shutdownTimeoutSeconds: number;
  /** Absolute path of the price catalog (YAML); undefined: the built-in default catalog. */
  readonly catalog: string | undefined;
  readonly maxPromptBytes: number;
  readonly countInlineMaxBytes: number;
  /** 0 = one less than the machine's cores (at least 1). */
  readonly countWorkers: number;
  readonly countCacheEntries: number;
  /** Where events are POSTed (http or https); undefined: no webhooks. */
  readonly webhookUrl: string | undefined;
  /** HMAC key of the webhook signature; set whenever webhookUrl is. Never logged (see redactConfig). */
  readonly webhookSecret: string | undefined;
  readonly webhookMaxAttempts: number;
  readonly webhookTimeoutMs: number;
  readonly webhookBackoffMs: number;
  readonly logLevel: LevelWithSilent;
  /** Absolute path of the JSON file the configuration was read from, if any. */
  readonly configFile: string | undefined;
}

export interface ConfigProblem {
  /** Env name(s) of the setting(s) at fault. */
  readonly settings: readonly string[];
  /** Full message, starting with the setting name(s). */
  readonly message: string;
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  /** Every problem found (the message lists them all, one a line). */
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[]) {
    super(
      problems.length === 1
        ? problems[0]!.message
        : `invalid configuration:\n${problems.map((p) => `  ${p.message}`).join("\n")}`,
    );
    this.problems = problems;
  }

  /** Env names of every setting at fault. */
  get settings(): string[] {
    return [...new Set(this.problems.flatMap((p) => p.settings))];
  }
}

/** Thrown by parsers; the loader prefixes the setting name and the offending value. */
class InvalidValue extends Error {}

type SettingKey = Exclude<keyof Config, "configFile">;

interface ParseContext {
  readonly cwd: string;
}

interface SettingSpec<K extends SettingKey> {
  readonly key: K;
  readonly env: string;
  /** Raw default as it would be written in the environment; undefined = unset. */
  readonly default: string | undefined;
  /** What values are allowed (used in errors and in the table). */
  readonly allowed: string;
  readonly description: string;
  readonly parse: (raw: string, ctx: ParseContext) => Config[K];
  /** Value shown in errors; override to hide secrets. */
  readonly show?: (raw: string) => string;
}

type AnySetting = { [K in SettingKey]: SettingSpec<K> }[SettingKey];

const LOG_LEVELS: readonly LevelWithSilent[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

const MAX_TTL_SECONDS = 604_800; // 7 days: holds longer than that are not holds any more
const WEBHOOK_SECRET_MIN = 16;
const WEBHOOK_SECRET_MAX = 1024;

export const CONFIG_FILE_ENV = "CREDITD_CONFIG_FILE";
const ENV_PREFIX = "CREDITD_";

/** A URL with one of the protocols and a host, returned as written. */
function urlWith(raw: string, protocols: readonly string[]): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new InvalidValue();
  }
  if (!protocols.includes(url.protocol) || url.hostname === "") throw new InvalidValue();
  return raw;
}

function integer(min: number, max: number): { allowed: string; parse: (raw: string) => number } {
  return {
    allowed: `an integer between ${min} and ${max}`,
    parse(raw) {
      if (!/^\d+$/.test(raw)) throw new InvalidValue();
      const value = Number(raw);
      if (!Number.isSafeInteger(value) || value < min || value > max) throw new InvalidValue();
      return value;
    },
  };
}

function parseHostPort(raw: string, minPort: number): RedisNodeAddress {
  let host: string;
  let portText: string;
  const bracketed = /^\[([^\]]+)\]:(\d+)$/.exec(raw);
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2]!;
    if (!isIPv6(host)) throw new InvalidValue();
  } else {
    const plain = /^([A-Za-z0-9._-]+):(\d+)$/.exec(raw);
    if (!plain) throw new InvalidValue();
    host = plain[1]!;
    portText = plain[2]!;
    if (host.startsWith(".") || host.startsWith("-") || host.includes("..")) throw new InvalidValue();
  }
  if (portText.length > 5) throw new InvalidValue();
  const port = Number(portText);
  if (port < minPort || port > 65535) throw new InvalidValue();
  return { host, port };
}

function validListenAddress(raw: string): string {
  parseHostPort(raw, 0);
  return raw;
}

/**
 * Splits "host:port" or "[v6]:port" (as validated by loadConfig) into its parts;
 * the IPv6 host comes back without brackets, ready for net/http listen().
 */
export function splitHostPort(addr: string): { host: string; port: number } {
  try {
    return parseHostPort(addr, 0);
  } catch {
    throw new Error(`not a host:port address: ${JSON.stringify(addr)}`);
  }
}

/** The URL with its password replaced by "***", for logs and error messages. */
export function redactUrl(raw: string): string {
  // Textual, so the URL is otherwise shown exactly as written.
  return raw.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/[^:/@]*):[^@/]*@/, "$1:***@");
}

const SETTINGS: readonly AnySetting[] = [
  {
    key: "grpcAddr",
    env: "CREDITD_GRPC_ADDR",
    default: "127.0.0.1:50051",
    allowed: "host:port with port 0-65535 (IPv6 as [::1]:port)",
    description: "Address the gRPC server listens on.",
    parse: validListenAddress,
  },
  {
    key: "httpAddr",
    env: "CREDITD_HTTP_ADDR",
    default: "127.0.0.1:8080",
    allowed: "host:port with port 0-65535 (IPv6 as [::1]:port)",
    description: "Address the HTTP server (JSON API, health) listens on.",
    parse: validListenAddress,
  },
  {
    key: "redisUrl",
    env: "CREDITD_REDIS_URL",
    default: undefined,
    allowed: "a redis:// or rediss:// URL with a host",
    description:
      "URL of an existing Redis (standalone). When neither this nor CREDITD_REDIS_CLUSTER_NODES is set, " +
      "creditd starts a local redis-server in CREDITD_DATA_DIR.",
    parse: (raw) => urlWith(raw, ["redis:", "rediss:"]),
    show: redactUrl,
  },
  {
    key: "redisClusterNodes",
    env: "CREDITD_REDIS_CLUSTER_NODES",
    default: undefined,
    allowed: "a comma-separated list of host:port (port 1-65535)",
    description: "Seed nodes of an existing Redis Cluster, e.g. 10.0.0.1:7000,10.0.0.2:7000.",
    parse(raw) {
      const nodes = raw.split(",").map((part) => Object.freeze(parseHostPort(part.trim(), 1)));
      return Object.freeze(nodes);
    },
  },
  {
    key: "dataDir",
    env: "CREDITD_DATA_DIR",
    default: ".creditd",
    allowed: "a folder path (relative paths resolve against the working directory)",
    description:
      "Folder of the local redis-server (AOF data, log, local-redis.json), used only when no Redis is configured.",
    parse: (raw, ctx) => resolve(ctx.cwd, raw),
  },
  {
    key: "keyPrefix",
    env: "CREDITD_KEY_PREFIX",
    default: "creditd",
    allowed: "1-32 characters from [A-Za-z0-9_-]",
    description: "Prefix of every Redis key creditd writes, so several deployments can share one Redis.",
    parse(raw) {
      if (!/^[A-Za-z0-9_-]{1,32}$/.test(raw)) throw new InvalidValue();
      return raw;
    },
  },
  {
    key: "holdTtlDefaultSeconds",
    env: "CREDITD_HOLD_TTL_DEFAULT_SECONDS",
    default: "600",
    ...integer(1, MAX_TTL_SECONDS),
    description: "Lifetime of a reservation (hold) when the request does not give one.",
  },
  {
    key: "holdTtlMaxSeconds",
    env: "CREDITD_HOLD_TTL_MAX_SECONDS",
    default: "86400",
    ...integer(1, MAX_TTL_SECONDS),
    description: "Longest reservation lifetime a request may ask for.",
  },
  {
    key: "idempotencyTtlSeconds",
    env: "CREDITD_IDEMPOTENCY_TTL_SECONDS",
    default: "86400",
    ...integer(3600, 31_536_000),
    description:
      "How long request_id / grant_id / finished-reservation records are kept so that retries replay the first result.",
  },
  {
    key: "ledgerMaxEntries",
    env: "CREDITD_LEDGER_MAX_ENTRIES",
    default: "100000",
    ...integer(0, 1_000_000_000),
    description: "Per-account ledger stream cap (approximate trimming); 0 = unlimited.",
  },
  {
    key: "ledgerRetentionDays",
    env: "CREDITD_LEDGER_RETENTION_DAYS",
    default: "0",
    ...integer(0, 36_500),
    description:
      "Ledger entries older than this many days are trimmed (approximately, when the account next reserves, " +
      "settles or refunds), besides the size cap; 0 = kept whatever their age. Usage summaries are kept apart.",
  },
  {
    key: "usageSummaryDays",
    env: "CREDITD_USAGE_SUMMARY_DAYS",
    default: "400",
    ...integer(0, 36_500),
    description:
      "Days of per-day usage totals (GetUsageSummary) kept per account, whatever the ledger keeps; older days " +
      "are dropped when a new day starts. 0 = every day.",
  },
  {
    key: "sweepIntervalSeconds",
    env: "CREDITD_SWEEP_INTERVAL_SECONDS",
    default: "15",
    ...integer(0, 3600),
    description: "Interval of the background sweeper that releases expired holds; 0 disables it.",
  },
  {
    key: "shutdownTimeoutSeconds",
    env: "CREDITD_SHUTDOWN_TIMEOUT_SECONDS",
    default: "10",
    ...integer(0, 3600),
    description: "On SIGTERM/SIGINT, how long in-flight requests may take to finish before the process exits.",
  },
  {
    key: "catalog",
    env: "CREDITD_CATALOG",
    default: undefined,
    allowed: "a path to a YAML catalog file (relative paths resolve against the working directory)",
    description:
      "The price catalog (operations, models, images, video). Reloaded when the file changes or on SIGHUP; " +
      "a bad new catalog is refused and the old one keeps serving. Unset: the built-in default catalog.",
    parse: (raw, ctx) => resolve(ctx.cwd, raw),
  },
  {
    key: "maxPromptBytes",
    env: "CREDITD_MAX_PROMPT_BYTES",
    default: "4194304",
    ...integer(1024, 64 * 1024 * 1024),
    description: "Largest prompt text (or chat, per message) creditd counts; larger is refused before any counting.",
  },
  {
    key: "countInlineMaxBytes",
    env: "CREDITD_COUNT_INLINE_MAX_BYTES",
    default: "16384",
    ...integer(0, 64 * 1024 * 1024),
    description: "Texts up to this size are counted on the event loop; larger ones on worker threads.",
  },
  {
    key: "countWorkers",
    env: "CREDITD_COUNT_WORKERS",
    default: "0",
    ...integer(0, 64),
    description: "Worker threads that count large texts; 0 = one less than the machine's cores (at least 1).",
  },
  {
    key: "countCacheEntries",
    env: "CREDITD_COUNT_CACHE_ENTRIES",
    default: "50000",
    ...integer(0, 10_000_000),
    description: "Token counts remembered by a hash of the text (never the text), so repeated content is nearly free.",
  },
  {
    key: "webhookUrl",
    env: "CREDITD_WEBHOOK_URL",
    default: undefined,
    allowed: "an http:// or https:// URL with a host",
    description:
      "Where account events are POSTed, signed, retried and dead-lettered after the last attempt (see Webhooks). " +
      "Unset: no webhooks.",
    parse: (raw) => urlWith(raw, ["http:", "https:"]),
    show: redactUrl,
  },
  {
    key: "webhookSecret",
    env: "CREDITD_WEBHOOK_SECRET",
    default: undefined,
    allowed: `${WEBHOOK_SECRET_MIN}-${WEBHOOK_SECRET_MAX} characters`,
    description:
      "Key of the HMAC-SHA256 in each webhook's creditd-signature header. Required with CREDITD_WEBHOOK_URL; never logged.",
    parse(raw) {
      if (raw.length < WEBHOOK_SECRET_MIN || raw.length > WEBHOOK_SECRET_MAX) throw new InvalidValue();
      return raw;
    },
    show: (raw) => `(hidden, ${raw.length} characters)`,
  },
  {
    key: "webhookMaxAttempts",
    env: "CREDITD_WEBHOOK_MAX_ATTEMPTS",
    default: "20",
    ...integer(1, 100),
    description: "Delivery attempts per event, the first included; after the last one fails the event is dead-lettered.",
  },
  {
    key: "webhookTimeoutMs",
    env: "CREDITD_WEBHOOK_TIMEOUT_MS",
    default: "5000",
    ...integer(100, 300_000),
    description: "How long one attempt waits for the receiver's response; a slower answer is a failed attempt.",
  },
  {
    key: "webhookBackoffMs",
    env: "CREDITD_WEBHOOK_BACKOFF_MS",
    default: "1000",
    ...integer(10, 600_000),
    description:
      "Wait before the first retry; each further retry may wait twice as long, at most 10 minutes (each wait is " +
      "jittered between half and all of that).",
  },
  {
    key: "logLevel",
    env: "CREDITD_LOG_LEVEL",
    default: "info",
    allowed: `one of ${LOG_LEVELS.join(", ")}`,
    description: "Log level (pino).",
    parse(raw) {
      const level = LOG_LEVELS.find((l) => l === raw);
      if (level === undefined) throw new InvalidValue();
      return level;
    },
  },
];

const CONFIG_FILE_DESCRIPTION =
  "Optional JSON file whose keys are these same env names (string or number values); environment variables override it.";

const KNOWN_ENV = new Set<string>([CONFIG_FILE_ENV, ...SETTINGS.map((s) => s.env)]);

interface RawValue {
  readonly text: string;
  readonly source: string; // "environment" or "config file <path>"
}

/**
 * Reads the configuration. Throws ConfigError (listing every problem) when anything is invalid;
 * returns warnings (unknown CREDITD_* variables, suspicious combinations) for the caller to log.
 */
export function loadConfig(
  env: NodeJS.ProcessEnv = process.env,
  cwd: string = process.cwd(),
): { config: Config; warnings: string[] } {
  const problems: ConfigProblem[] = [];
  const warnings: string[] = [];
  const raw = new Map<string, RawValue>();

  const configFileRaw = nonEmpty(env[CONFIG_FILE_ENV]);
  const configFile = configFileRaw === undefined ? undefined : resolve(cwd, configFileRaw);
  if (configFile !== undefined) {
    readConfigFile(configFile, raw, problems);
  }

  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX)) continue;
    if (!KNOWN_ENV.has(name)) {
      const suggestion = closestSetting(name);
      warnings.push(
        `unknown environment variable ${name} ignored` + (suggestion ? ` (did you mean ${suggestion}?)` : ""),
      );
      continue;
    }
    const text = nonEmpty(value);
    if (text !== undefined && name !== CONFIG_FILE_ENV) raw.set(name, { text, source: "environment" });
  }

  const values: Partial<Record<SettingKey, unknown>> = {};
  const ctx: ParseContext = { cwd };
  for (const setting of SETTINGS) {
    const given = raw.get(setting.env);
    const text = given?.text ?? setting.default;
    if (text === undefined) {
      values[setting.key] = undefined;
      continue;
    }
    try {
      values[setting.key] = (setting.parse as (raw: string, ctx: ParseContext) => unknown)(text, ctx);
    } catch (err) {
      if (!(err instanceof InvalidValue)) throw err;
      const shown = JSON.stringify(setting.show ? setting.show(text) : text);
      const from = given && given.source !== "environment" ? ` (from ${given.source})` : "";
      problems.push({
        settings: [setting.env],
        message: `${setting.env}: must be ${setting.allowed}, got ${shown}${from}`,
      });
    }
  }

  // Combinations, checked only when both sides parsed.
  if (values.redisUrl !== undefined && values.redisClusterNodes !== undefined) {
    problems.push({
      settings: ["CREDITD_REDIS_URL", "CREDITD_REDIS_CLUSTER_NODES"],
      message:
        "CREDITD_REDIS_URL and CREDITD_REDIS_CLUSTER_NODES are both set: set only one " +
        "(CREDITD_REDIS_URL for a standalone Redis, CREDITD_REDIS_CLUSTER_NODES for a Cluster)",
    });
  }
  const holdDefault = values.holdTtlDefaultSeconds;
  const holdMax = values.holdTtlMaxSeconds;
  if (typeof holdDefault === "number" && typeof holdMax === "number" && holdDefault > holdMax) {
    problems.push({
      settings: ["CREDITD_HOLD_TTL_DEFAULT_SECONDS", "CREDITD_HOLD_TTL_MAX_SECONDS"],
      message:
        `CREDITD_HOLD_TTL_DEFAULT_SECONDS (${holdDefault}) must be less than or equal to ` +
        `CREDITD_HOLD_TTL_MAX_SECONDS (${holdMax})`,
    });
  }
  const idempotency = values.idempotencyTtlSeconds;
  if (typeof idempotency === "number" && typeof holdMax === "number" && idempotency < holdMax) {
    warnings.push(
      `CREDITD_IDEMPOTENCY_TTL_SECONDS (${idempotency}) is shorter than CREDITD_HOLD_TTL_MAX_SECONDS (${holdMax}): ` +
        "a retry arriving after the idempotency record expired but while the hold still lives would not be recognised",
    );
  }
  // An unsigned webhook could be forged by anyone who can reach the receiver, so a URL needs its secret.
  if (values.webhookUrl !== undefined && !raw.has("CREDITD_WEBHOOK_SECRET")) {
    problems.push({
      settings: ["CREDITD_WEBHOOK_SECRET", "CREDITD_WEBHOOK_URL"],
      message:
        `CREDITD_WEBHOOK_SECRET: required when CREDITD_WEBHOOK_URL is set (${WEBHOOK_SECRET_MIN}-${WEBHOOK_SECRET_MAX} ` +
        "characters; receivers check each event's signature with it)",
    });
  }
  if (raw.has("CREDITD_WEBHOOK_SECRET") && !raw.has("CREDITD_WEBHOOK_URL")) {
    warnings.push("CREDITD_WEBHOOK_SECRET is set but CREDITD_WEBHOOK_URL is not: no webhooks are sent");
  }

  if (problems.length > 0) throw new ConfigError(problems);

  const config = Object.freeze({ ...values, configFile } as Config);
  return { config, warnings };
}

function readConfigFile(path: string, raw: Map<string, RawValue>, problems: ConfigProblem[]): void {
  const fileProblem = (what: string): void => {
    problems.push({ settings: [CONFIG_FILE_ENV], message: `${CONFIG_FILE_ENV}: ${what}` });
  };
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    fileProblem(`cannot read ${path}${code === "ENOENT" ? ": no such file" : `: ${(err as Error).message}`}`);
    return;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    fileProblem(`${path} is not valid JSON: ${(err as Error).message}`);
    return;
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    fileProblem(`${path} must hold a JSON object whose keys are CREDITD_* setting names`);
    return;
  }
  const source = `config file ${path}`;
  for (const [key, value] of Object.entries(parsed)) {
    if (key === CONFIG_FILE_ENV || !KNOWN_ENV.has(key)) {
      const suggestion = key === CONFIG_FILE_ENV ? undefined : closestSetting(key);
      problems.push({
        settings: [key],
        message:
          `${key}: unknown setting in ${CONFIG_FILE_ENV} ${path}` +
          (key === CONFIG_FILE_ENV ? " (a config file cannot name another one)" : "") +
          (suggestion ? ` (did you mean ${suggestion}?)` : ""),
      });
      continue;
    }
    if (typeof value === "string") {
      const textValue = nonEmpty(value);
      if (textValue !== undefined) raw.set(key, { text: textValue, source });
    } else if (typeof value === "number" && Number.isFinite(value)) {
      raw.set(key, { text: String(value), source });
    } else {
      problems.push({
        settings: [key],
        message: `${key}: must be a string or a number in ${CONFIG_FILE_ENV} ${path}, got ${JSON.stringify(value)}`,
      });
    }
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  return trimmed === "" ? undefined : trimmed;
}

/** The known setting closest to a misspelt name, when it is close enough to be a typo. */
function closestSetting(name: string): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const known of KNOWN_ENV) {
    const d = editDistance(name.toUpperCase(), known);
    if (d < bestDistance) {
      bestDistance = d;
      best = known;
    }
  }
  return bestDistance <= 3 ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost);
    }
    previous = current;
  }
  return previous[b.length]!;
}

export interface SettingRow {
  readonly env: string;
  /** Default as written in the environment; "" when unset by default. */
  readonly default: string;
  /** Allowed values. */
  readonly allowed: string;
  readonly description: string;
}

/** Every setting (including CREDITD_CONFIG_FILE), in documentation order. */
export function settingsTable(): SettingRow[] {
  return [
    ...SETTINGS.map((s) => ({
      env: s.env,
      default: s.default ?? "",
      allowed: s.allowed,
      description: s.description,
    })),
    {
      env: CONFIG_FILE_ENV,
      default: "",
      allowed: "a path to a JSON file (relative paths resolve against the working directory)",
      description: CONFIG_FILE_DESCRIPTION,
    },
  ];
}

/** The settings as a Markdown table, for the README. */
export function renderSettingsMarkdown(): string {
  const cell = (text: string): string => text.replace(/\|/g, "\\|").replace(/\n/g, " ");
  const lines = [
    "| Variable | Default | Allowed values | Description |",
    "| --- | --- | --- | --- |",
    ...settingsTable().map(
      (row) =>
        `| \`${row.env}\` | ${row.default === "" ? "(unset)" : `\`${cell(row.default)}\``} | ` +
        `${cell(row.allowed)} | ${cell(row.description)} |`,
    ),
  ];
  return lines.join("\n") + "\n";
}

/** The configuration with secrets (the Redis password) hidden, for the startup log line. */
export function redactConfig(config: Config): Config {
  return Object.freeze({
    ...config,
    redisUrl: config.redisUrl === undefined ? undefined : redactUrl(config.redisUrl),
    webhookUrl: config.webhookUrl === undefined ? undefined : redactUrl(config.webhookUrl),
    webhookSecret: config.webhookSecret === undefined ? undefined : "***",
  });
}
