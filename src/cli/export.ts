// `npm run export`: one account's usage records (what ListUsage returns), oldest first, as CSV or JSON Lines, into
// a file or stdout. Reads the same configuration and the same Redis as `npm start` (see ./redis.ts), and changes
// nothing. Streams: one ledger batch at a time, written with backpressure, so memory stays flat however long the
// range. A file is written under a temporary name and renamed when complete: a failed export leaves no half file.
//
// Exit codes: 0 exported, 2 the export could not run or did not complete (usage, configuration, no Redis, the
// file), as for `npm run audit`.

import { rename, rm } from "node:fs/promises";
import { createWriteStream } from "node:fs";
import { basename, dirname, join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { parseArgs } from "node:util";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { ConnectError } from "@connectrpc/connect";
import { UsageFilterSchema } from "../gen/creditd/v1/usage_service_pb.js";
import type { RedisClient } from "../redis/connect.js";
import { usageFilter } from "../service/usage-service.js";
import * as v from "../service/validate.js";
import { CSV_COLUMNS, type ExportFormatName, exportText } from "../usage/export.js";
import { UsageReader } from "../usage/reader.js";
import { CannotRun, closeRedis, connectRedis, ledgerOf, loadToolConfig } from "./redis.js";

const USAGE = `usage: npm run export -- --account ID --out FILE|- [--from TIME] [--to TIME] [--format csv|jsonl]
                         [--member M] [--operation O] [--model X]

Writes one account's usage records (charges, and refunds of charges), oldest first, as ListUsage and
ExportUsage return them. Changes nothing.

  --account ID     the account (required)
  --out FILE|-     the file to write (replaced when the export completes), or - for stdout (required)
  --from TIME      first time, inclusive, ISO 8601 (2026-11-01 or 2026-11-01T00:00:00Z); default: the oldest kept
  --to TIME        end, exclusive, ISO 8601; default: now
  --format F       csv (RFC 4180, a header row; the default) or jsonl (one UsageRecord JSON per line)
  --member M       only this workspace member's records
  --operation O    only this operation (as the proxy named it at Reserve)
  --model X        only this model (as the proxy named it at Reserve)
  -h, --help       this text

CSV columns: ${CSV_COLUMNS.join(", ")}.
Amounts are integer micro-credits (credits_micros), with the same amount in credits as an exact decimal (credits).

Redis: CREDITD_REDIS_URL or CREDITD_REDIS_CLUSTER_NODES, else the local Redis of a running \`npm start\`
(found through CREDITD_DATA_DIR). CREDITD_KEY_PREFIX is read as \`npm start\` reads it.

Exit status: 0 exported, 2 the export could not run or did not complete.
`;

class UsageError extends Error {}

interface Options {
  accountId: string;
  out: string;
  format: ExportFormatName;
  fromMs: number;
  toMs: number;
  memberId: string;
  operation: string;
  model: string;
}

/** Where each filter field comes from on the command line, to name it in errors. */
const OPTION_OF_FIELD: Record<string, string> = {
  "filter.from": "--from",
  "filter.to": "--to",
  "filter.member_id": "--member",
  "filter.operation": "--operation",
  "filter.model": "--model",
  account_id: "--account",
};

/** ISO 8601: a date, or a date and time; a time without an offset is UTC (as a date alone is). */
const ISO_TIME = /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,3})?)?)(Z|[+-]\d{2}:\d{2})?)?$/;

function parseTime(option: string, text: string | undefined): number {
  if (text === undefined) return 0;
  // Date.parse reads more than ISO 8601 ("March 7") and reads a time without offset as local: insist on the shape.
  const m = ISO_TIME.exec(text);
  const ms = m ? Date.parse(m[2] ? `${m[1]}T${m[2]}${m[3] ?? "Z"}` : m[1]!) : NaN;
  if (Number.isNaN(ms) || ms <= 0) throw new UsageError(`${option} ${JSON.stringify(text)}: not an ISO 8601 time after 1970`);
  return ms;
}

function parseOptions(argv: string[]): Options | "help" {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        account: { type: "string" },
        out: { type: "string" },
        from: { type: "string" },
        to: { type: "string" },
        format: { type: "string", default: "csv" },
        member: { type: "string" },
        operation: { type: "string" },
        model: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
      allowPositionals: false,
      strict: true,
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const o = parsed.values;
  if (o.help) return "help";
  if (o.account === undefined) throw new UsageError("--account is required");
  if (o.out === undefined || o.out === "") throw new UsageError("--out is required (a file, or - for stdout)");
  if (o.format !== "csv" && o.format !== "jsonl") {
    throw new UsageError(`--format ${JSON.stringify(o.format)}: csv or jsonl`);
  }
  const fromMs = parseTime("--from", o.from);
  const toMs = parseTime("--to", o.to);
  // The same checks as the RPC's, with the option named instead of the field.
  try {
    v.accountId("account_id", o.account);
    const filter = create(UsageFilterSchema, {
      ...(fromMs ? { from: timestampFromMs(fromMs) } : {}),
      ...(toMs ? { to: timestampFromMs(toMs) } : {}),
      memberId: o.member ?? "",
      operation: o.operation ?? "",
      model: o.model ?? "",
    });
    usageFilter(filter);
  } catch (err) {
    if (!(err instanceof ConnectError)) throw err;
    let message = err.rawMessage;
    for (const [field, option] of Object.entries(OPTION_OF_FIELD)) message = message.split(field).join(option);
    throw new UsageError(message);
  }
  return {
    accountId: o.account,
    out: o.out,
    format: o.format,
    fromMs,
    toMs,
    memberId: o.member ?? "",
    operation: o.operation ?? "",
    model: o.model ?? "",
  };
}

async function main(argv: string[]): Promise<number> {
  let options: Options | "help";
  try {
    options = parseOptions(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`creditd export: ${err.message}\n\n${USAGE}`);
    return 2;
  }
  if (options === "help") {
    process.stdout.write(USAGE);
    return 0;
  }

  const config = loadToolConfig("creditd export");
  if (config === null) return 2;

  const toStdout = options.out === "-";
  // Beside the target, so the final rename stays on one file system.
  const partial = toStdout ? "" : join(dirname(options.out), `.${basename(options.out)}.${process.pid}.partial`);
  let redis: RedisClient | undefined;
  let written = false;
  try {
    redis = await connectRedis(config, { connectionName: "creditd-export", purpose: "to export from" });
    const reader = new UsageReader(ledgerOf(redis, config));
    let records = 0;
    const text = exportText(
      reader,
      options.accountId,
      { fromMs: options.fromMs, toMs: options.toMs },
      { memberId: options.memberId, operation: options.operation, model: options.model },
      options.format,
      { onRecords: (n) => (records += n) },
    );
    const sink = toStdout ? process.stdout : createWriteStream(partial, { flags: "wx" });
    // pipeline waits on the sink's drain between chunks (backpressure); stdout is left open.
    await pipeline(Readable.from(text, { objectMode: false }), sink, { end: !toStdout });
    if (!toStdout) {
      await rename(partial, options.out);
      written = true;
    }
    process.stderr.write(
      `creditd export: ${records} record${records === 1 ? "" : "s"} of ${options.accountId} ` +
        `written to ${toStdout ? "stdout" : options.out} (${options.format})\n`,
    );
    return 0;
  } catch (err) {
    if (err instanceof CannotRun) {
      process.stderr.write(`creditd export: ${err.message}\n`);
      return 2;
    }
    const e = err as NodeJS.ErrnoException;
    if (e.syscall !== undefined && e.path !== undefined) {
      process.stderr.write(`creditd export: cannot write ${options.out}: ${e.message}\n`);
      return 2;
    }
    process.stderr.write(`creditd export: failed: ${e.stack ?? String(err)}\n`);
    return 2;
  } finally {
    if (!toStdout && !written) await rm(partial, { force: true }).catch(() => {});
    await closeRedis(redis);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`creditd export: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 2;
  },
);
