// The contract between the RPC edges (gRPC over HTTP/2, Connect over HTTP/1.1) and the
// service implementations. The edges hold no business logic: each one decodes a request,
// calls exactly one handler, and encodes the result or the error.
import type {
  DescMessage,
  DescMethod,
  DescMethodUnary,
  DescService,
  MessageShape,
} from "@bufbuild/protobuf";

/** What a handler gets besides the request. Kept transport-neutral on purpose. */
export interface CallContext {
  /** Aborted when the client cancels, the deadline passes, or the server gives up on shutdown. */
  signal: AbortSignal;
}

/**
 * One unary RPC. Errors are signalled by throwing a ConnectError (code, message, optional
 * ErrorInfo details); anything else thrown becomes INTERNAL "internal error" on the wire.
 *
 * Declared through method syntax because TypeScript checks method parameters bivariantly:
 * that is what lets a precisely typed `ServiceBinding<typeof CreditService>` be passed
 * where the edges take the untyped `ServiceBinding` (they decode the request with the
 * same descriptor, so the narrower parameter type does hold at runtime).
 */
export type UnaryHandler<I extends DescMessage = DescMessage, O extends DescMessage = DescMessage> = {
  handle(req: MessageShape<I>, ctx: CallContext): Promise<MessageShape<O>>;
}["handle"];

/**
 * A typed unary method maps to its handler. The untyped `DescMethod` (what the edges see
 * when they iterate a plain `DescService`) maps to the untyped handler. Streaming methods
 * map to `never`: the edges serve unary RPCs only.
 */
export type HandlerFor<M> =
  M extends DescMethodUnary<infer I, infer O>
    ? UnaryHandler<I, O>
    : DescMethodUnary extends M
      ? UnaryHandler
      : never;

/** One async function per unary method, keyed by the method's localName ("reserve", "getBalance"). */
export type ServiceHandlers<S extends DescService> = {
  [K in keyof S["method"]]: HandlerFor<S["method"][K]>;
};

/** A service descriptor with the implementation object that serves it. */
export interface ServiceBinding<S extends DescService = DescService> {
  service: S;
  handlers: ServiceHandlers<S>;
}

/** "creditd.v1.CreditService/Reserve": the name used in logs (the gRPC path without the leading slash). */
export function rpcName(method: DescMethod): string {
  return `${method.parent.typeName}/${method.name}`;
}

/**
 * The handler for a method, or undefined. Looked up by localName, which is how both the
 * generated GenService types and connect's ServiceImpl key methods.
 */
export function handlerOf(binding: ServiceBinding, method: DescMethod): UnaryHandler | undefined {
  return binding.handlers[method.localName];
}
