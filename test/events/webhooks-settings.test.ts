// The webhook settings: defaults, parsing, and refusals that name the setting and never echo the secret.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig, redactConfig, settingsTable } from "../../src/config/settings.js";

const cwd = "/srv/app";
const SECRET = "whsec_0123456789abcdef";

function errorOf(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env, cwd);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe("webhook settings", () => {
  it("are off by default, with 8 attempts, a 5 s timeout and a 1 s first backoff", () => {
    const { config, warnings } = loadConfig({}, cwd);
    expect(config).toMatchObject({
      webhookMaxAttempts: 20,
      webhookTimeoutMs: 5000,
      webhookBackoffMs: 1000,
    });
    expect(config.webhookUrl).toBeUndefined();
    expect(config.webhookSecret).toBeUndefined();
    expect(warnings).toEqual([]);
  });

  it("parse a URL with its secret and the numbers, from the environment or the config file", () => {
    const env = {
      CREDITD_WEBHOOK_URL: "https://hooks.example.com/creditd?tenant=7",
      CREDITD_WEBHOOK_SECRET: SECRET,
      CREDITD_WEBHOOK_MAX_ATTEMPTS: "20",
      CREDITD_WEBHOOK_TIMEOUT_MS: "100",
      CREDITD_WEBHOOK_BACKOFF_MS: "600000",
    };
    expect(loadConfig(env, cwd).config).toMatchObject({
      webhookUrl: "https://hooks.example.com/creditd?tenant=7",
      webhookSecret: SECRET,
      webhookMaxAttempts: 20,
      webhookTimeoutMs: 100,
      webhookBackoffMs: 600000,
    });
    expect(loadConfig({ CREDITD_WEBHOOK_URL: "http://127.0.0.1:9000/hook", CREDITD_WEBHOOK_SECRET: SECRET }, cwd).config.webhookUrl).toBe(
      "http://127.0.0.1:9000/hook",
    );

    const dir = mkdtempSync(join(tmpdir(), "creditd-config-"));
    dirs.push(dir);
    const file = join(dir, "creditd.json");
    writeFileSync(
      file,
      JSON.stringify({ CREDITD_WEBHOOK_URL: "https://h.example/x", CREDITD_WEBHOOK_SECRET: SECRET, CREDITD_WEBHOOK_MAX_ATTEMPTS: 3 }),
    );
    expect(loadConfig({ CREDITD_CONFIG_FILE: file }, cwd).config).toMatchObject({
      webhookUrl: "https://h.example/x",
      webhookMaxAttempts: 3,
    });
  });

  // [env name, bad value, a fragment of the allowed-values text]
  const cases: Array<[string, string, string]> = [
    ["CREDITD_WEBHOOK_URL", "ftp://files.example.com/x", "http:// or https://"],
    ["CREDITD_WEBHOOK_URL", "not a url", "http:// or https://"],
    ["CREDITD_WEBHOOK_URL", "redis://localhost:6379", "http:// or https://"],
    ["CREDITD_WEBHOOK_MAX_ATTEMPTS", "0", "between 1 and 100"],
    ["CREDITD_WEBHOOK_MAX_ATTEMPTS", "101", "between 1 and 100"],
    ["CREDITD_WEBHOOK_MAX_ATTEMPTS", "three", "between 1 and 100"],
    ["CREDITD_WEBHOOK_TIMEOUT_MS", "99", "between 100 and 300000"],
    ["CREDITD_WEBHOOK_TIMEOUT_MS", "1.5", "between 100 and 300000"],
    ["CREDITD_WEBHOOK_BACKOFF_MS", "9", "between 10 and 600000"],
    ["CREDITD_WEBHOOK_BACKOFF_MS", "600001", "between 10 and 600000"],
  ];
  for (const [name, value, allowed] of cases) {
    it(`refuses ${name}=${JSON.stringify(value)}, naming it`, () => {
      const err = errorOf({ CREDITD_WEBHOOK_URL: "https://h.example/x", CREDITD_WEBHOOK_SECRET: SECRET, [name]: value });
      expect(err.settings).toEqual([name]);
      expect(err.message.startsWith(`${name}: must be`)).toBe(true);
      expect(err.message).toContain(allowed);
    });
  }

  it("needs the secret with a URL, and says so without showing a secret that is too short", () => {
    const missing = errorOf({ CREDITD_WEBHOOK_URL: "https://h.example/x" });
    expect(missing.settings).toEqual(["CREDITD_WEBHOOK_SECRET", "CREDITD_WEBHOOK_URL"]);
    expect(missing.message).toMatch(/^CREDITD_WEBHOOK_SECRET: required when CREDITD_WEBHOOK_URL is set/);

    const short = errorOf({ CREDITD_WEBHOOK_URL: "https://h.example/x", CREDITD_WEBHOOK_SECRET: "tooshort-secret" });
    expect(short.settings).toEqual(["CREDITD_WEBHOOK_SECRET"]);
    expect(short.message).toContain("16-1024 characters");
    expect(short.message).toContain("(hidden, 15 characters)");
    expect(short.message).not.toContain("tooshort-secret");
  });

  it("hides the password of a refused URL", () => {
    const err = errorOf({ CREDITD_WEBHOOK_URL: "ftp://user:hunter2@h.example/x", CREDITD_WEBHOOK_SECRET: SECRET });
    expect(err.settings).toEqual(["CREDITD_WEBHOOK_URL"]);
    expect(err.message).not.toContain("hunter2");
  });

  it("warns about a secret without a URL", () => {
    const { config, warnings } = loadConfig({ CREDITD_WEBHOOK_SECRET: SECRET }, cwd);
    expect(config.webhookUrl).toBeUndefined();
    expect(warnings).toEqual(["CREDITD_WEBHOOK_SECRET is set but CREDITD_WEBHOOK_URL is not: no webhooks are sent"]);
  });

  it("redactConfig hides the secret and the URL's password", () => {
    const { config } = loadConfig(
      { CREDITD_WEBHOOK_URL: "https://u:pw-in-url@h.example/x", CREDITD_WEBHOOK_SECRET: SECRET },
      cwd,
    );
    const shown = JSON.stringify(redactConfig(config));
    expect(shown).not.toContain(SECRET);
    expect(shown).not.toContain("pw-in-url");
    expect(redactConfig(config).webhookSecret).toBe("***");
  });

  it("are in the settings table", () => {
    const names = settingsTable().map((row) => row.env);
    for (const name of [
      "CREDITD_WEBHOOK_URL",
      "CREDITD_WEBHOOK_SECRET",
      "CREDITD_WEBHOOK_MAX_ATTEMPTS",
      "CREDITD_WEBHOOK_TIMEOUT_MS",
      "CREDITD_WEBHOOK_BACKOFF_MS",
    ]) {
      expect(names).toContain(name);
    }
  });
});
