import type { DescMessage, DescService, Message } from "@bufbuild/protobuf";
import { Code, type ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import { toWireError } from "./errors.js";
import { abortedError } from "./stream.js";
import {
  type AnyHandler,
  type ServerStreamingHandler,
  type ServiceBinding,
  type ServiceHandlers,
  type UnaryHandler,
  handlerOf,
  rpcName,
  streamingHandlerOf,
} from "./types.js";

/**
 * Request fields that may be logged: identifiers only. Keyed by protobuf field name (which is
 * also the log key); every other field stays out of the logs because requests can carry
 * customer data (prompts, refund reasons, ...).
 */
const LOGGED_FIELDS = ["account_id", "request_id", "reservation_id", "grant_id"] as const;

/** "resource_exhausted": the code's name as in the Connect protocol and gRPC docs. */
export function outcomeOf(code: Code): string {
  // Code is a numeric enum, so Code[code] is its PascalCase name ("ResourceExhausted").
  return Code[code].replace(/(?<=[a-z])(?=[A-Z])/g, "_").toLowerCase();
}

/** For each method, the (field name, localName) pairs of the loggable fields its request has. */
function loggedFieldsOf(input: DescMessage): Array<[logKey: string, localName: string]> {
  const out: Array<[string, string]> = [];
  for (const field of input.fields) {
    // Top-level string scalars only: a nested message with the same name would be another matter.
    if (field.fieldKind === "scalar" && (LOGGED_FIELDS as readonly string[]).includes(field.name)) {
      out.push([field.name, field.localName]);
    }
  }
  return out;
}

/** The start of a call's log line: the rpc and the request's non-empty loggable identifiers (loggedFieldsOf). */
function logLineOf(rpc: string, fields: Array<[string, string]>, req: Message): Record<string, unknown> {
  const line: Record<string, unknown> = { rpc };
  // Read by the generated localName; only the allowed identifiers are copied.
  const view = req as Message & Record<string, unknown>;
  for (const [logKey, localName] of fields) {
    const value = view[localName];
    if (typeof value === "string" && value !== "") {
      line[logKey] = value;
    }
  }
  return line;
}

/** Nanoseconds since `start` in milliseconds, rounded to the microsecond. */
function msSince(start: bigint): number {
  return Math.round(Number(process.hrtime.bigint() - start) / 1e3) / 1e3;
}

/**
 * A server-streaming handler with one log line when the stream ends (rpc, outcome, latency_ms: the stream's
 * whole life, messages: how many it yielded to the edge, and the request's identifiers), and its errors mapped
 * as for unary calls. When the call's signal aborted, the outcome is the signal's reason (canceled,
 * deadline_exceeded, unavailable at shutdown), since that is how the edges end the call.
 */
function instrumentStreaming(
  rpc: string,
  fields: Array<[string, string]>,
  handler: ServerStreamingHandler,
  logger: Logger,
): ServerStreamingHandler {
  return async function* (req, ctx) {
    const start = process.hrtime.bigint();
    const line = logLineOf(rpc, fields, req);
    let messages = 0;
    let completed = false;
    let failure: ConnectError | undefined;
    let thrown: unknown;
    try {
      for await (const message of handler(req, ctx)) {
        messages++;
        yield message;
      }
      completed = true;
    } catch (err) {
      thrown = err;
      failure = toWireError(err);
      throw failure;
    } finally {
      // Not completed and nothing thrown: the edge stopped reading (the call ended without the handler).
      const code = ctx.signal.aborted ? abortedError(ctx.signal).code : (failure?.code ?? (completed ? undefined : Code.Canceled));
      line["outcome"] = code === undefined ? "ok" : outcomeOf(code);
      line["latency_ms"] = msSince(start);
      line["messages"] = messages;
      if (code === Code.Internal && failure !== undefined) {
        line["err"] = failure === thrown ? (failure.cause ?? failure) : thrown;
        logger.error(line, "rpc");
      } else {
        logger.info(line, "rpc");
      }
    }
  };
}

/**
 * Wraps every handler of the binding: one log line per RPC (rpc, outcome, latency_ms and the
 * identifiers of the request; for a server stream, when it ends, with the messages sent), and
 * non-ConnectError throws turned into INTERNAL "internal error" (logged with the cause at error
 * level). Both edges serve the instrumented binding, so a call is logged once whichever protocol
 * carried it.
 */
export function instrument<S extends DescService>(binding: ServiceBinding<S>, logger: Logger): ServiceBinding<S> {
  const wrapped: Record<string, AnyHandler> = {};
  // Widen once: the wrapper is generic over methods, the typed view is restored on return.
  const untyped = binding as unknown as ServiceBinding;
  for (const method of binding.service.methods) {
    const streaming = streamingHandlerOf(untyped, method);
    if (streaming !== undefined) {
      wrapped[method.localName] = instrumentStreaming(rpcName(method), loggedFieldsOf(method.input), streaming, logger);
      continue;
    }
    const handler = handlerOf(untyped, method);
    if (handler === undefined) {
      continue; // the edges answer UNIMPLEMENTED for these
    }
    const rpc = rpcName(method);
    const fields = loggedFieldsOf(method.input);
    const unary: UnaryHandler = async (req, ctx) => {
      const start = process.hrtime.bigint();
      const line = logLineOf(rpc, fields, req);
      const finish = (outcome: string): void => {
        line["outcome"] = outcome;
        line["latency_ms"] = msSince(start);
      };
      try {
        const res = await handler(req, ctx);
        finish("ok");
        logger.info(line, "rpc");
        return res;
      } catch (thrown) {
        const err = toWireError(thrown);
        finish(outcomeOf(err.code));
        if (err.code === Code.Internal) {
          // The cause (what was thrown, or what a deliberate INTERNAL wraps) is for operators only.
          line["err"] = err === thrown ? (err.cause ?? err) : thrown;
          logger.error(line, "rpc");
        } else {
          logger.info(line, "rpc");
        }
        throw err;
      }
    };
    wrapped[method.localName] = unary;
  }
  return { service: binding.service, handlers: wrapped as ServiceHandlers<S> };
}
