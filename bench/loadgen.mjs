// The gRPC load generator: a separate Node process (forked by run.mjs, driven over IPC) that speaks gRPC with a raw
// node:http2 client and pre-encoded frames (5-byte gRPC header + protobuf bytes from the generated code in dist/gen).
// It is what drives creditd whenever the body must change per call (a Reserve needs a fresh request id, a Settle a
// reservation id), which h2load cannot do. It never decodes replies: it only checks grpc-status.
//
// A job is a list of streams run at the same time; each stream is either closed-loop (`concurrency` calls in flight)
// or open-loop (`rate` calls per second, latency measured from the scheduled send time, so a stall is not hidden by
// the generator waiting for it). The job ends when every stream not marked `background` is done; background streams
// then stop issuing and their calls in flight finish. Server CPU (every thread of each pid in `pids`, from
// /proc/<pid>/task/*/schedstat, in ns) is read just before the first call and just after the last foreground one.
import http2 from "node:http2";
import { performance } from "node:perf_hooks";
import { create, toBinary } from "@bufbuild/protobuf";
import { GrantRequestSchema } from "../dist/gen/creditd/v1/admin_service_pb.js";
import { ReserveRequestSchema, SettleRequestSchema } from "../dist/gen/creditd/v1/credit_service_pb.js";
import { BucketKind } from "../dist/gen/creditd/v1/types_pb.js";
import { cpuNs, cpuTicksNs, summarize } from "./lib/measure.mjs";
import { chatMessages, prose } from "./lib/texts.mjs";

const PATH = {
  health: "/grpc.health.v1.Health/Check",
  catalog: "/creditd.v1.CreditService/GetCatalog",
  reserve: "/creditd.v1.CreditService/Reserve",
  settle: "/creditd.v1.CreditService/Settle",
  grant: "/creditd.v1.AdminService/Grant",
};

function frameOf(bytes) {
  const frame = Buffer.allocUnsafe(5 + bytes.length);
  frame[0] = 0;
  frame.writeUInt32BE(bytes.length, 1);
  frame.set(bytes, 5);
  return frame;
}

// ------------------------------------------------------------------------------------------------ operations

const EMPTY = frameOf(new Uint8Array(0));
const accountOf = (op, i) => `${op.accountPrefix}${op.accountCount === 1 ? 0 : i % op.accountCount}`;

function reserveFrame(op, i) {
  return frameOf(
    toBinary(
      ReserveRequestSchema,
      create(ReserveRequestSchema, {
        accountId: accountOf(op, i),
        requestId: `${op.idPrefix}-${i}`,
        cost: { case: "amountMicros", value: BigInt(op.amount ?? 1_000_000) },
      }),
    ),
  );
}

function settleFrame(op, i) {
  return frameOf(
    toBinary(
      SettleRequestSchema,
      create(SettleRequestSchema, {
        reservationId: `${accountOf(op, i)}:${op.idPrefix}-${i}`,
        cost: { case: "chargeMicros", value: BigInt(op.charge ?? 600_000) },
      }),
    ),
  );
}

function pricedFrame(op, i, input, accountIndex = i) {
  return frameOf(
    toBinary(
      ReserveRequestSchema,
      create(ReserveRequestSchema, {
        accountId: accountOf(op, accountIndex),
        requestId: `${op.idPrefix}-${i}`,
        cost: {
          case: "priced",
          value: { operation: "chat", model: op.model ?? "gpt-4o-mini", maxOutputTokens: 256n, input },
        },
      }),
    ),
  );
}

let bigBase; // one base text per size, shared by every big-prompt call (each call prefixes it with its own id)

/** One call (or two, for a cycle) of an operation: [path, frame][] for call index i. */
function callsOf(op, i) {
  switch (op.kind) {
    case "health":
      return [[PATH.health, EMPTY]];
    case "path":
      // Any method with an empty request (bench experiments: servers of their own).
      return [[op.path, EMPTY]];
    case "catalog":
      // creditd's own no-op: an empty GetCatalogRequest through its binding, instrument (a log line) and protobuf-es.
      return [[PATH.catalog, EMPTY]];
    case "reserve":
      return [[PATH.reserve, reserveFrame(op, i)]];
    case "settle":
      return [[PATH.settle, settleFrame(op, i)]];
    case "cycle":
      return [
        [PATH.reserve, reserveFrame(op, i)],
        [PATH.settle, settleFrame(op, i)],
      ];
    case "grant":
      return [
        [
          PATH.grant,
          frameOf(
            toBinary(
              GrantRequestSchema,
              create(GrantRequestSchema, {
                accountId: `${op.accountPrefix}${i}`,
                grantId: `${op.idPrefix}-${i}`,
                amountMicros: BigInt(op.amount),
                kind: BucketKind.TOPUP,
              }),
            ),
          ),
        ],
      ];
    case "chat": {
      // conversation = i (+ offset; modulo convModulo to repeat conversations); `messages` after the system prompt;
      // one: a single new user message.
      // The account follows the conversation: the count cache is scoped by account.
      const c = op.convModulo ? i % op.convModulo : i;
      const conv = (op.convOffset ?? 0) + c;
      const messages = op.one ? [{ role: "user", content: prose(200, 7_000_000 + conv) }] : chatMessages(conv, op.messages);
      return [[PATH.reserve, pricedFrame(op, i, { case: "chat", value: { messages } }, c)]];
    }
    case "bigtext": {
      if (bigBase?.bytes !== op.bytes) bigBase = { bytes: op.bytes, text: prose(op.bytes, 424242) };
      const text = `${op.idPrefix}-${i} ${bigBase.text}`;
      return [[PATH.reserve, pricedFrame(op, i, { case: "text", value: text })]];
    }
    default:
      throw new Error(`unknown op ${op.kind}`);
  }
}

// ------------------------------------------------------------------------------------------------ the client

function connect(port) {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`, {
      settings: { initialWindowSize: 4 * 1024 * 1024 },
    });
    session.once("connect", () => {
      session.setLocalWindowSize?.(16 * 1024 * 1024);
      resolve(session);
    });
    session.once("error", reject);
    session.on("error", () => {}); // later errors surface on the streams
  });
}

const noop = () => {};

/** One unary gRPC call; resolves with null on grpc-status 0, else { status, message }. */
function call(session, path, frame) {
  return new Promise((resolve) => {
    let status;
    let message;
    let req;
    try {
      req = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
    } catch (err) {
      resolve({ status: "client", message: err.message });
      return;
    }
    req.on("response", (h) => {
      if (h["grpc-status"] !== undefined) {
        status = h["grpc-status"];
        message = h["grpc-message"];
      }
    });
    req.on("trailers", (t) => {
      status = t["grpc-status"];
      message = t["grpc-message"];
    });
    req.on("data", noop);
    req.on("error", (err) => {
      message ??= err.message;
    });
    req.on("close", () => {
      resolve(status === "0" ? null : { status: status ?? `rst ${req.rstCode}`, message: decodeURIComponent(message ?? "") });
    });
    req.end(frame);
  });
}

// ------------------------------------------------------------------------------------------------ a stream

async function runStream(s, port) {
  const sessions = [];
  for (let c = 0; c < (s.connections ?? 1); c++) sessions.push(await connect(port));
  const op = s.op;
  const start = s.startIndex ?? 0;
  const lat = [];
  const errors = [];
  let ok = 0;
  let units = 0; // completed operations (a cycle is one unit of two calls)
  let next = 0;
  let stopped = false;
  let t0 = 0;
  let tEnd = 0;

  const one = async (i, scheduledAt) => {
    const session = sessions[i % sessions.length];
    let allOk = true;
    for (const [path, frame] of callsOf(op, start + i)) {
      const t = scheduledAt ?? performance.now();
      scheduledAt = undefined; // only the first call of a cycle waited for its schedule
      const err = await call(session, path, frame);
      lat.push(performance.now() - t);
      if (err) {
        allOk = false;
        if (errors.length < 5) errors.push(`${path.split("/").pop()}: ${err.status} ${err.message}`);
        s.errorCount = (s.errorCount ?? 0) + 1;
        break;
      }
      ok++;
    }
    if (allOk) units++;
  };

  const limit = s.count ?? Infinity;
  const ready = {
    async run() {
      t0 = performance.now();
      const until = s.durationMs === undefined ? Infinity : t0 + s.durationMs;
      if (s.rate) {
        // Open loop.
        const interval = 1000 / s.rate;
        const total = Math.min(limit, s.durationMs === undefined ? Infinity : Math.floor((s.rate * s.durationMs) / 1000));
        const maxInFlight = s.maxInFlight ?? 4096;
        let inflight = 0;
        let at = t0;
        await new Promise((resolveAll) => {
          let finished = false;
          const maybeDone = () => {
            if (!finished && (next >= total || stopped) && inflight === 0) {
              finished = true;
              resolveAll();
            }
          };
          const pump = () => {
            const now = performance.now();
            while (!stopped && next < total && at <= now && inflight < maxInFlight) {
              const i = next++;
              inflight++;
              const scheduled = at;
              at += interval;
              one(i, scheduled).then(() => {
                inflight--;
                maybeDone();
              });
            }
            if (!stopped && next < total) setTimeout(pump, Math.max(0, Math.min(at - performance.now(), 50)));
            else maybeDone();
          };
          s.stop = () => {
            stopped = true;
            maybeDone();
          };
          pump();
        });
      } else {
        s.stop = () => {
          stopped = true;
        };
        const worker = async () => {
          while (!stopped && next < limit && performance.now() < until) await one(next++);
        };
        await Promise.all(Array.from({ length: s.concurrency ?? 1 }, worker));
      }
      tEnd = performance.now();
    },
  };
  return {
    ready,
    result() {
      const elapsedS = (tEnd - t0) / 1000;
      return {
        name: s.name,
        issued: next,
        ok,
        units,
        errors: s.errorCount ?? 0,
        errorSamples: errors,
        elapsedS,
        callsPerS: ok / elapsedS,
        unitsPerS: units / elapsedS,
        latencyMs: summarize(lat),
      };
    },
    close() {
      for (const session of sessions) session.close();
    },
  };
}

// ------------------------------------------------------------------------------------------------ a job

async function runJob(job) {
  const streams = await Promise.all(job.streams.map((s) => runStream(s, job.port)));
  // Pre-build the per-call data of big ops before the clock starts (the base text).
  for (const s of job.streams) if (s.op.kind === "bigtext") callsOf(s.op, 0);
  const pids = job.pids ?? {};
  const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, { ns: cpuNs(pid), ticks: cpuTicksNs(pid) }]));
  const t0 = performance.now();
  const fg = [];
  const bg = [];
  job.streams.forEach((s, idx) => (s.background ? bg : fg).push(streams[idx].ready.run()));
  await Promise.all(fg);
  const wallS = (performance.now() - t0) / 1000;
  const after = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, { ns: cpuNs(pid), ticks: cpuTicksNs(pid) }]));
  for (const s of job.streams) if (s.background) s.stop?.();
  await Promise.all(bg);
  const cpu = {};
  for (const k of Object.keys(pids)) {
    cpu[k] = { ns: after[k].ns - before[k].ns, ticksNs: after[k].ticks - before[k].ticks };
  }
  const results = streams.map((s) => s.result());
  for (const s of streams) s.close();
  return { wallS, cpu, streams: results };
}

process.on("message", async (msg) => {
  if (msg?.type === "exit") process.exit(0);
  try {
    const result = await runJob(msg.job);
    process.send({ id: msg.id, result });
  } catch (err) {
    process.send({ id: msg.id, error: String(err?.stack ?? err) });
  }
});
process.on("disconnect", () => process.exit(0));
