import { type Code, ConnectError } from "@connectrpc/connect";

export interface Rejection {
  code: Code;
  message: string;
  /** The google.rpc.ErrorInfo detail, as an object. */
  info: Record<string, unknown> | undefined;
}

/** Awaits a service call that must be refused, and returns its code, message and ErrorInfo. */
export async function rejection(call: Promise<unknown>): Promise<Rejection> {
  const err = await call.then(
    () => {
      throw new Error("expected the call to be refused");
    },
    (e: unknown) => e,
  );
  if (!(err instanceof ConnectError)) throw err;
  const detail = err.details[0];
  const info = detail && "desc" in detail ? detail.value : undefined;
  return { code: err.code, message: err.rawMessage, info: info as Record<string, unknown> | undefined };
}
