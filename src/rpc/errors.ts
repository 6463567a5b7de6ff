import { Code, ConnectError } from "@connectrpc/connect";

/** The only text a client ever sees for an unexpected failure: causes may hold secrets or customer data. */
export const INTERNAL_MESSAGE = "internal error";

/**
 * Returns the ConnectError to put on the wire for anything a handler threw.
 * A ConnectError is the handler's deliberate answer and passes through untouched; anything
 * else is a bug or an outage and becomes INTERNAL "internal error", with the original kept
 * only as `cause` (for the log line, never serialized by either edge).
 *
 * Deliberately not ConnectError.from(): it keeps the thrown error's message (as UNKNOWN),
 * which would leak the cause to the client.
 */
export function toWireError(err: unknown): ConnectError {
  if (err instanceof ConnectError) {
    return err;
  }
  return new ConnectError(INTERNAL_MESSAGE, Code.Internal, undefined, undefined, err);
}
