// The HTTP/1.1 edge: the same bindings as the gRPC edge, served with the Connect protocol
// (unary POST with application/json or application/proto; server streams as Connect's enveloped
// application/connect+json or +proto), so plain curl/fetch can call the unary ones:
//   curl -H 'Content-Type: application/json' -d '{"accountId":"acme"}' \
//     http://127.0.0.1:8080/creditd.v1.CreditService/GetBalance
//
// Errors come out as Connect JSON errors (HTTP status from the code, e.g. 429 for
// resource_exhausted):
//   {"code":"resource_exhausted","message":"insufficient credits: ...",
//    "details":[{"type":"google.rpc.ErrorInfo","value":"<base64, no padding>",
//                "debug":{"reason":"INSUFFICIENT_CREDITS","domain":"creditd","metadata":{...}}}]}
// What we found in @connectrpc/connect 2.2.0 (protocol-connect/error-json.js, errorToJson):
// `type` is the detail's typeName (no type.googleapis.com/ prefix), `value` is the binary
// message in base64 "std_raw" (standard alphabet, padding stripped), and `debug` (the detail
// as proto3 JSON, via toJson with the router's jsonOptions) is included by default for every
// detail thrown as { desc, value }; it is only left out when toJson fails (e.g. an Any whose
// type is not in the registry). Details re-thrown from another call's wire ({ type, value })
// are passed through with whatever debug they arrived with (none from gRPC). So no option is
// needed, as long as handlers throw details as { desc: ErrorInfoSchema, value }.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { DescService, Message } from "@bufbuild/protobuf";
import type { ConnectError, HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import { toWireError } from "./errors.js";
import { ABORTED, abortedError, linkedController, nextOrAborted, shuttingDown, stopIterator } from "./stream.js";
import {
  MAX_MESSAGE_BYTES,
  type ServerStreamingHandler,
  type ServiceBinding,
  type UnaryHandler,
  handlerOf,
  rpcName,
  streamingHandlerOf,
} from "./types.js";

export interface HttpServerOptions {
  /** "host:port" ("[::1]:8080" for IPv6); port 0 picks a free port (returned as `port`). */
  addr: string;
  /** Instrumented bindings: the edge itself does not log calls. */
  bindings: readonly ServiceBinding[];
  logger: Logger;
}

export interface HttpServerHandle {
  /** The bound port (the real one when addr asked for port 0). */
  port: number;
  /**
   * Stops accepting connections, ends open server streams at once (UNAVAILABLE "server shutting
   * down"), lets in-flight requests finish for up to timeoutMs and closes keep-alive connections as
   * they go idle; at the deadline it aborts the handlers' signals and destroys whatever connections
   * remain. Resolves when every connection is closed.
   */
  close(timeoutMs: number): Promise<void>;
}

/** "127.0.0.1:8080" / "[::1]:8080" / ":8080" to host and port. */
export function parseAddr(addr: string): { host: string | undefined; port: number } {
  const colon = addr.lastIndexOf(":");
  const portText = colon < 0 ? "" : addr.slice(colon + 1);
  const port = Number(portText);
  if (portText === "" || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`invalid listen address ${JSON.stringify(addr)}: want host:port`);
  }
  const host = addr.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
  return { host: host === "" ? undefined : host, port };
}

type ConnectUnaryImpl = (req: Message, ctx: HandlerContext) => Promise<Message>;
type ConnectStreamingImpl = (req: Message, ctx: HandlerContext) => AsyncIterable<Message>;

/**
 * A server-streaming handler as a connect ServiceImpl method. Connect pulls the next message once the previous
 * one is written to the socket (connect-node awaits 'drain'), so a slow client backpressures the handler. The
 * handler's signal aborts with the client (connect's ctx.signal: connection closed, deadline) and when close()
 * begins (`streams`); the stream then ends with the signal's reason, so a shutdown reaches the client as an
 * UNAVAILABLE end-of-stream message rather than a truncated body.
 */
function connectStreamingImpl(
  rpc: string,
  handler: ServerStreamingHandler,
  streams: AbortSignal,
  logger: Logger,
): ConnectStreamingImpl {
  return async function* (req, ctx) {
    const { controller, dispose } = linkedController([ctx.signal, streams]);
    const signal = controller.signal;
    let it: AsyncIterator<Message> | undefined;
    let failure: ConnectError | undefined;
    try {
      if (!signal.aborted) {
        it = handler(req, { signal })[Symbol.asyncIterator]();
        for (;;) {
          const r = await nextOrAborted(it, signal);
          if (r === ABORTED || r.done === true || signal.aborted) {
            break;
          }
          yield r.value;
        }
      }
    } catch (thrown) {
      failure = toWireError(thrown);
      if (failure !== thrown && !signal.aborted) {
        // As for unary: only reachable with a binding that did not go through instrument().
        logger.error({ rpc, err: thrown }, "handler threw a non-ConnectError");
      }
    } finally {
      // Also reached when connect stops reading (the client went away): the handler stops at its next yield.
      dispose();
      stopIterator(it);
    }
    if (signal.aborted) {
      throw abortedError(signal);
    }
    if (failure !== undefined) {
      throw failure;
    }
  };
}

function connectImpl(binding: ServiceBinding, logger: Logger, streams: AbortSignal): Partial<ServiceImpl<DescService>> {
  const impl: Record<string, ConnectUnaryImpl | ConnectStreamingImpl> = {};
  for (const method of binding.service.methods) {
    const streaming = streamingHandlerOf(binding, method);
    if (streaming !== undefined) {
      impl[method.localName] = connectStreamingImpl(rpcName(method), streaming, streams, logger);
      continue;
    }
    const handler: UnaryHandler | undefined = handlerOf(binding, method);
    if (handler === undefined) {
      continue; // the router answers unimplemented for methods left out
    }
    const rpc = rpcName(method);
    impl[method.localName] = async (req, ctx) => {
      try {
        // Only the signal crosses over: handlers stay transport-neutral.
        return await handler(req, { signal: ctx.signal });
      } catch (thrown) {
        const err = toWireError(thrown);
        if (err !== thrown) {
          // Only reachable with a binding that did not go through instrument(); without this,
          // connect would send the thrown error's message (as code unknown) to the client.
          logger.error({ rpc, err: thrown }, "handler threw a non-ConnectError");
        }
        throw err;
      }
    };
  }
  // ServiceImpl<DescService> cannot name per-method types for an untyped service (its method
  // impls resolve to never); the router looks impls up by localName, which is what we built.
  return impl as unknown as Partial<ServiceImpl<DescService>>;
}

/** Starts listening; resolves once the port is bound. */
export async function startHttpServer(options: HttpServerOptions): Promise<HttpServerHandle> {
  const { addr, bindings, logger } = options;
  const { host, port: wantPort } = parseAddr(addr);
  // Aborted only when close() runs out of time: it aborts every in-flight handler's ctx.signal.
  const shutdown = new AbortController();
  // Aborted as soon as close() begins: a server stream (WatchEvents) may never end by itself, so none may hold it up.
  const streams = new AbortController();

  const handler = connectNodeAdapter({
    // Connect protocol only: gRPC clients use the gRPC edge, and gRPC-web has no user here.
    connect: true,
    grpc: false,
    grpcWeb: false,
    readMaxBytes: MAX_MESSAGE_BYTES,
    writeMaxBytes: MAX_MESSAGE_BYTES,
    shutdownSignal: shutdown.signal,
    // Emit zero values ("heldMicros":"0") so JSON replies from curl read complete; proto3
    // JSON parsers accept them either way.
    jsonOptions: { alwaysEmitImplicit: true },
    routes(router) {
      for (const binding of bindings) {
        router.service(binding.service, connectImpl(binding, logger, streams.signal));
      }
    },
  });

  // Responses in flight: while draining, each one tells its client not to reuse the connection,
  // and its socket is closed as soon as it goes idle. Without that, a keep-alive socket freed
  // after close() began would stay open until the keep-alive timeout and hold close() up.
  const inFlight = new Set<ServerResponse>();
  let draining = false;
  const noKeepAlive = (res: ServerResponse): void => {
    if (!res.headersSent) {
      res.setHeader("Connection", "close"); // merged into connect-node's writeHead
    }
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    inFlight.add(res);
    if (draining) {
      noKeepAlive(res); // a request on a connection accepted before close()
    }
    res.once("close", () => {
      inFlight.delete(res);
      if (draining) {
        // The socket counts as idle only once the response is detached from it.
        setImmediate(() => server.closeIdleConnections());
      }
    });
    handler(req, res);
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(wantPort, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (err) => logger.error({ err }, "http server error"));
  const port = (server.address() as AddressInfo).port;
  logger.info({ addr, port }, "http listening");

  let closing: Promise<void> | undefined;
  return {
    port,
    close(timeoutMs) {
      closing ??= new Promise<void>((resolve) => {
        draining = true;
        streams.abort(shuttingDown());
        inFlight.forEach(noKeepAlive);
        const timer = setTimeout(() => {
          logger.warn({ timeoutMs, inFlight: inFlight.size }, "http requests still running at shutdown deadline; aborting them");
          shutdown.abort();
          server.closeAllConnections();
        }, timeoutMs);
        // close() stops accepting and (Node >= 19) closes the connections idle right now; the
        // callback fires when the last connection is gone.
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
