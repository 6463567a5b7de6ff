// `npm run audit`: checks DESIGN.md's invariant (granted = available + held + charged + expired, nothing
// negative, held = the sum of the live holds) for every account, or for the accounts named with --account.
// Reads the same configuration as `npm start`, and the same Redis: CREDITD_REDIS_URL / CREDITD_REDIS_CLUSTER_NODES,
// else the local redis-server a running `npm start` uses. Changes nothing: each account is one read-only script.
//
// Exit codes: 0 every audited account is consistent, 1 at least one is not, 2 the audit could not run
// (usage, configuration, no Redis).

import { parseArgs } from "node:util";
import { ACCOUNT_ID_PATTERN } from "../ledger/keys.js";
import type { AuditReport, Ledger } from "../ledger/ledger.js";
import type { RedisClient } from "../redis/connect.js";
import { CannotRun, closeRedis, connectRedis, ledgerOf, loadToolConfig } from "./redis.js";

const USAGE = `usage: npm run audit [-- [--account ID]... [--json]]

Checks every account's credits (granted = available + held + charged + expired, no negative amounts,
held = the sum of the live holds) and changes nothing.

  --account ID   audit only this account (repeatable); default: every account under CREDITD_KEY_PREFIX
  --json         one JSON object on stdout instead of text
  -h, --help     this text

Redis: CREDITD_REDIS_URL or CREDITD_REDIS_CLUSTER_NODES, else the local Redis of a running \`npm start\`
(found through CREDITD_DATA_DIR). Every other CREDITD_* setting is read as \`npm start\` reads it.

Exit status: 0 all consistent, 1 an account has a problem, 2 the audit could not run.
`;

/** Accounts audited at once: one short read-only script each. */
const CONCURRENCY = 16;

class UsageError extends Error {}

interface Options {
  accounts: string[];
  json: boolean;
  help: boolean;
}

function parseOptions(argv: string[]): Options {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        account: { type: "string", multiple: true },
        json: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      allowPositionals: false,
      strict: true,
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const accounts = [...new Set(parsed.values.account ?? [])];
  for (const id of accounts) {
    if (!ACCOUNT_ID_PATTERN.test(id)) {
      throw new UsageError(`--account ${JSON.stringify(id)}: an account id is 1-128 of A-Z a-z 0-9 . _ -`);
    }
  }
  return { accounts, json: parsed.values.json ?? false, help: parsed.values.help ?? false };
}

interface Outcome {
  audited: number;
  failed: AuditReport[];
  /** Accounts named with --account that have no account hash (audited as empty). */
  notFound: string[];
}

async function runAudit(ledger: Ledger, accounts: string[]): Promise<Outcome> {
  const outcome: Outcome = { audited: 0, failed: [], notFound: [] };
  const ids: AsyncIterable<string> | Iterable<string> = accounts.length > 0 ? accounts : uniqueIds(ledger);
  const inFlight = new Set<Promise<void>>();
  const auditOne = async (id: string): Promise<void> => {
    if (accounts.length > 0 && (await ledger.redis.exists(ledger.keys.account(id).acct)) === 0) {
      outcome.notFound.push(id);
    }
    const report = await ledger.audit(id);
    outcome.audited += 1;
    if (!report.ok) outcome.failed.push(report);
  };
  // The first failure stops the walk; every started audit is awaited, so no rejection goes unhandled
  // (an unhandled one would end the process with status 1, which here means "a problem was found").
  let failure: { error: unknown } | undefined;
  for await (const id of ids) {
    const p: Promise<void> = auditOne(id)
      .catch((error: unknown) => {
        failure ??= { error };
      })
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
    if (inFlight.size >= CONCURRENCY) await Promise.race(inFlight);
    if (failure !== undefined) break;
  }
  await Promise.all(inFlight);
  if (failure !== undefined) throw failure.error;
  outcome.failed.sort((a, b) => (a.accountId < b.accountId ? -1 : a.accountId > b.accountId ? 1 : 0));
  return outcome;
}

/** SCAN may return a key more than once: each account is audited once. */
async function* uniqueIds(ledger: Ledger): AsyncGenerator<string> {
  const seen = new Set<string>();
  for await (const id of ledger.accountIds()) {
    if (seen.has(id)) continue;
    seen.add(id);
    yield id;
  }
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function printText(outcome: Outcome): void {
  const out: string[] = [];
  for (const report of outcome.failed) out.push(`${report.accountId}: ${report.problems.join("; ")}`);
  for (const id of outcome.notFound) out.push(`${id}: no such account (nothing stored under it)`);
  out.push(
    `audited ${plural(outcome.audited, "account")}: ${outcome.failed.length} with problems` +
      (outcome.notFound.length > 0 ? ` (${outcome.notFound.length} not found)` : ""),
  );
  process.stdout.write(out.join("\n") + "\n");
}

function printJson(outcome: Outcome, keyPrefix: string): void {
  const result = {
    ok: outcome.failed.length === 0,
    keyPrefix,
    audited: outcome.audited,
    withProblems: outcome.failed.length,
    notFound: outcome.notFound,
    problems: outcome.failed,
  };
  process.stdout.write(JSON.stringify(result) + "\n");
}

async function main(argv: string[]): Promise<number> {
  let options: Options;
  try {
    options = parseOptions(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`creditd audit: ${err.message}\n\n${USAGE}`);
    return 2;
  }
  if (options.help) {
    process.stdout.write(USAGE);
    return 0;
  }

  const config = loadToolConfig("creditd audit");
  if (config === null) return 2;

  let redis: RedisClient | undefined;
  try {
    redis = await connectRedis(config, { connectionName: "creditd-audit", purpose: "to audit" });
    const ledger = ledgerOf(redis, config);
    const outcome = await runAudit(ledger, options.accounts);
    if (options.json) printJson(outcome, config.keyPrefix);
    else printText(outcome);
    return outcome.failed.length === 0 ? 0 : 1;
  } catch (err) {
    if (err instanceof CannotRun) {
      process.stderr.write(`creditd audit: ${err.message}\n`);
      return 2;
    }
    process.stderr.write(`creditd audit: failed: ${(err as Error).stack ?? String(err)}\n`);
    return 2;
  } finally {
    await closeRedis(redis);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`creditd audit: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 2;
  },
);
