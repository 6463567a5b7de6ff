// The contract between the RPC edges (gRPC over HTTP/2, Connect over HTTP/1.1) and the
// service implementations. The edges hold no business logic: each one decodes a request,
// calls exactly one handler, and encodes the result or the error.
import type {
  DescMessage,
  DescMethod,
  DescMethodServerStreaming,
  DescMethodUnary,
  DescService,
  MessageShape,
} from "@bufbuild/protobuf";

/** Largest request or response message either edge accepts, both directions (the gRPC default is 4 MiB in). */
export const MAX_MESSAGE_BYTES = 8 * 1024 * 1024;

/** What a handler gets besides the request. Kept transport-neutral on purpose. */
export interface CallContext {
  /**
   * Aborted when the client cancels, the deadline passes, or the server gives up on shutdown. A streaming call's
   * signal also aborts at the very start of a graceful shutdown (long-lived streams must not hold it up), and its
   * reason is then a ConnectError: CANCELED, DEADLINE_EXCEEDED or UNAVAILABLE "server shutting down".
   */
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
 * One server-streaming RPC, usually an async generator: each value it yields is one response message, and
 * returning ends the call with OK. Throwing ends it with that error, as for unary (a ConnectError goes out as
 * is, anything else as INTERNAL "internal error"), even after messages were sent.
 *
 * It must end soon after ctx.signal aborts (client gone, deadline, server shutting down): the edges then stop
 * reading it, end the call with the signal's reason and call its return(), which runs its `finally` blocks at
 * its next yield. However it ends after the signal aborted, the client (if still there) gets the signal's
 * reason, so a stream cut by shutdown ends UNAVAILABLE "server shutting down", never a misleading OK.
 *
 * The edges pull the next message only when the transport has room for it (gRPC: grpc-js's buffer below its
 * high-water mark, else after 'drain'; Connect: once the previous message is written to the socket), so a slow
 * client slows the generator down instead of growing a buffer.
 */
export type ServerStreamingHandler<I extends DescMessage = DescMessage, O extends DescMessage = DescMessage> = {
  handle(req: MessageShape<I>, ctx: CallContext): AsyncIterable<MessageShape<O>>;
}["handle"];

/** Either kind, as the edges see handlers before they look at the method's kind. */
export type AnyHandler = UnaryHandler | ServerStreamingHandler;

/**
 * A typed unary or server-streaming method maps to its handler. The untyped `DescMethod` (what
 * the edges see when they iterate a plain `DescService`) maps to either handler. Client and
 * bidi streaming methods map to `never`: the edges do not serve them.
 */
export type HandlerFor<M> =
  M extends DescMethodUnary<infer I, infer O>
    ? UnaryHandler<I, O>
    : M extends DescMethodServerStreaming<infer I, infer O>
      ? ServerStreamingHandler<I, O>
      : DescMethodUnary extends M
        ? AnyHandler
        : never;

/** One function per method, keyed by the method's localName ("reserve", "getBalance", "watchEvents"). */
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
 * The handler of a unary method, or undefined. Looked up by localName, which is how both the
 * generated GenService types and connect's ServiceImpl key methods.
 */
export function handlerOf(binding: ServiceBinding, method: DescMethod): UnaryHandler | undefined {
  // The binding's type ties each method to its kind of handler (HandlerFor): a unary method has a unary one.
  return method.methodKind === "unary" ? (binding.handlers[method.localName] as UnaryHandler | undefined) : undefined;
}

/** The handler of a server-streaming method, or undefined. */
export function streamingHandlerOf(binding: ServiceBinding, method: DescMethod): ServerStreamingHandler | undefined {
  return method.methodKind === "server_streaming"
    ? (binding.handlers[method.localName] as ServerStreamingHandler | undefined)
    : undefined;
}
