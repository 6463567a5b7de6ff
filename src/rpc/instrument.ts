import type { DescMessage, DescService, Message } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import type { Logger } from "pino";
import { toWireError } from "./errors.js";
import { type ServiceBinding, type ServiceHandlers, type UnaryHandler, handlerOf, rpcName } from "./types.js";

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

/**
 * Wraps every handler of the binding: one log line per RPC (rpc, outcome, latency_ms and the
 * identifiers of the request), and non-ConnectError throws turned into INTERNAL "internal error"
 * (logged with the cause at error level). Both edges serve the instrumented binding, so a call
 * is logged once whichever protocol carried it.
 */
export function instrument<S extends DescService>(binding: ServiceBinding<S>, logger: Logger): ServiceBinding<S> {
  const wrapped: Record<string, UnaryHandler> = {};
  // Widen once: the wrapper is generic over methods, the typed view is restored on return.
  const untyped = binding as unknown as ServiceBinding;
  for (const method of binding.service.methods) {
    const handler = handlerOf(untyped, method);
    if (handler === undefined || method.methodKind !== "unary") {
      continue; // the edges answer UNIMPLEMENTED for these
    }
    const rpc = rpcName(method);
    const fields = loggedFieldsOf(method.input);
    wrapped[method.localName] = async (req, ctx) => {
      const start = process.hrtime.bigint();
      const line: Record<string, unknown> = { rpc };
      // Read by the generated localName; only the allowed identifiers are copied.
      const view = req as Message & Record<string, unknown>;
      for (const [logKey, localName] of fields) {
        const value = view[localName];
        if (typeof value === "string" && value !== "") {
          line[logKey] = value;
        }
      }
      const finish = (outcome: string): void => {
        // Nanoseconds to milliseconds, rounded to the microsecond.
        line["outcome"] = outcome;
        line["latency_ms"] = Math.round(Number(process.hrtime.bigint() - start) / 1e3) / 1e3;
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
  }
  return { service: binding.service, handlers: wrapped as ServiceHandlers<S> };
}
