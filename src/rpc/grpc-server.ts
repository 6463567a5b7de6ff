// The gRPC edge: serves ServiceBindings over HTTP/2 with @grpc/grpc-js, plus server reflection
// (so grpcurl works without .proto files) and the standard health service.
import { type DescFile, type DescMethod, type DescService, type Message, create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, anyPack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  Metadata,
  Server,
  ServerCredentials,
  type MethodDefinition,
  type ServerOptions,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
  type StatusObject,
  type UntypedServiceImplementation,
  type sendUnaryData,
} from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import type { Logger } from "pino";
import { file_google_rpc_error_details } from "../gen/google/rpc/error_details_pb.js";
import { StatusSchema, file_google_rpc_status } from "../gen/google/rpc/status_pb.js";
import { toWireError } from "./errors.js";
import { HEALTH_FILE_DESCRIPTOR } from "./health-descriptor.js";
import { ABORTED, abortedError, nextOrAborted, shuttingDown, stopIterator } from "./stream.js";
import {
  MAX_MESSAGE_BYTES,
  type ServerStreamingHandler,
  type ServiceBinding,
  type UnaryHandler,
  handlerOf,
  rpcName,
  streamingHandlerOf,
} from "./types.js";

/** The metadata key gRPC clients (grpc-go, grpc-java, grpc-js, grpcurl) read rich error details from. */
export const STATUS_DETAILS_KEY = "grpc-status-details-bin";

export interface GrpcServerOptions {
  /** "host:port"; port 0 picks a free port (returned as `port`). */
  addr: string;
  /** Instrumented bindings: the edge itself does not log successful calls. */
  bindings: readonly ServiceBinding[];
  logger: Logger;
  /** Initial health of "" and every bound service. Default true. */
  serving?: boolean;
  /** Overrides/extra grpc-js server options, merged over the defaults below. */
  serverOptions?: ServerOptions;
}

export interface GrpcServerHandle {
  /** The bound port (the real one when addr asked for port 0). */
  port: number;
  health: {
    /** SERVING or NOT_SERVING for "" and every bound service. */
    setServing(serving: boolean): void;
  };
  /**
   * Graceful stop: refuse new calls, end open server streams at once (UNAVAILABLE "server shutting down"), wait
   * for in-flight unary calls up to timeoutMs, then cut them off.
   */
  shutdown(timeoutMs: number): Promise<void>;
}

const DEFAULT_SERVER_OPTIONS: ServerOptions = {
  "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
  "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
  // Ping clients every 30s and drop the connection if a ping is not answered in 10s, so
  // half-open connections (client host gone, NAT state dropped) do not linger.
  "grpc.keepalive_time_ms": 30_000,
  "grpc.keepalive_timeout_ms": 10_000,
};

/** Response bytes without a copy: grpc-js wants a Buffer, protobuf-es produces a Uint8Array. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * A grpc-js ServiceDefinition for a protobuf-es service: the same paths and wire format as
 * protoc-generated code, without any .proto loading. Unary and server-streaming methods only
 * (others are left out, so grpc-js answers UNIMPLEMENTED for them). It carries client
 * (de)serializers too, so it can also feed makeGenericClientConstructor.
 */
export function grpcServiceDefinition(service: DescService): ServiceDefinition {
  const def: Record<string, MethodDefinition<Message, Message>> = {};
  for (const method of service.methods) {
    if (method.methodKind !== "unary" && method.methodKind !== "server_streaming") {
      continue;
    }
    def[method.name] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: false,
      responseStream: method.methodKind === "server_streaming",
      requestSerialize: (msg) => asBuffer(toBinary(method.input, msg)),
      requestDeserialize: (buf) => fromBinary(method.input, buf),
      responseSerialize: (msg) => asBuffer(toBinary(method.output, msg)),
      responseDeserialize: (buf) => fromBinary(method.output, buf),
      originalName: method.localName,
    };
  }
  return def;
}

/**
 * The gRPC status for an error a handler threw: same numeric code (Connect codes are the gRPC
 * codes), the raw message as grpc-message, and when the error has details a binary
 * google.rpc.Status in grpc-status-details-bin, the way connect-go and grpc-go send it. The
 * `details` are packed as google.protobuf.Any, so any gRPC client can decode the ErrorInfo.
 */
export function grpcStatusOf(err: ConnectError): Partial<StatusObject> {
  const metadata = new Metadata();
  // Headers a handler attached to the error go out as trailers, as connect's own gRPC protocol
  // handler does (protocol-grpc/trailer-status.js, which this function mirrors).
  err.metadata.forEach((value, key) => {
    if (key.startsWith("grpc-") || key.startsWith(":") || key === "content-type" || key === "te") {
      return; // protocol headers are grpc-js's to write
    }
    try {
      metadata.add(key, key.endsWith("-bin") ? Buffer.from(value, "base64") : value);
    } catch {
      // An HTTP header name that is not a legal gRPC metadata key: not representable, dropped.
    }
  });
  if (err.details.length > 0) {
    const status = create(StatusSchema, {
      code: err.code,
      message: err.rawMessage,
      details: err.details.map((detail) =>
        "desc" in detail
          ? anyPack(detail.desc, create(detail.desc, detail.value))
          : // A detail parsed off another call's wire: already binary, keep its type.
            { typeUrl: `type.googleapis.com/${detail.type}`, value: detail.value },
      ),
    });
    metadata.set(STATUS_DETAILS_KEY, asBuffer(toBinary(StatusSchema, status)));
  }
  // Connect's Code and grpc-js's status are distinct enums over the same numbers.
  const code: number = err.code;
  return { code, details: err.rawMessage, metadata };
}

function unaryCall(
  method: DescMethod,
  handler: UnaryHandler,
  logger: Logger,
): (call: ServerUnaryCall<Message, Message>, callback: sendUnaryData<Message>) => void {
  const rpc = rpcName(method);
  return (call, callback) => {
    // grpc-js emits "cancelled" when the client cancels, the deadline passes or the server is
    // force-shut down (and also right after a normal finish, hence the removal before replying).
    // The signal is made when the handler first reads it: most unary handlers never do, and an
    // AbortController plus a listener per call is a measurable share of a small RPC's CPU.
    let abort: AbortController | undefined;
    let finished = false; // a signal first read after the reply stays live, as it was when the handler returned
    const onCancelled = (): void => abort?.abort();
    const ctx = {
      get signal(): AbortSignal {
        if (abort === undefined) {
          abort = new AbortController();
          if (finished) return abort.signal;
          if (call.cancelled) abort.abort();
          else call.once("cancelled", onCancelled);
        }
        return abort.signal;
      },
    };
    const finish = (): void => {
      finished = true;
      if (abort !== undefined) call.off("cancelled", onCancelled);
    };
    // The async wrapper turns a synchronous throw into a rejection as well.
    (async () => handler(call.request, ctx))().then(
      (res) => {
        finish();
        callback(null, res);
      },
      (thrown: unknown) => {
        finish();
        const err = toWireError(thrown);
        if (err !== thrown) {
          // Only reachable with a binding that did not go through instrument().
          logger.error({ rpc, err: thrown }, "handler threw a non-ConnectError");
        }
        callback(grpcStatusOf(err));
      },
    );
  };
}

/** The open server streams of one server, and whether it is shutting down (new streams then end at once). */
interface Streams {
  live: Set<AbortController>;
  draining: boolean;
}

/** Why grpc-js cancelled a call: its deadline passed, or the client (or its connection) went away. */
function cancelReason(call: ServerWritableStream<Message, Message>): ConnectError {
  const deadline = call.getDeadline();
  const ms = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(ms) && ms <= Date.now()
    ? new ConnectError("deadline exceeded", Code.DeadlineExceeded)
    : new ConnectError("cancelled by the client", Code.Canceled);
}

/**
 * Resolves once the stream can take more (grpc-js buffers up to its high-water mark, 16 messages, then waits on
 * HTTP/2 flow control), or once writing is pointless: the call was cancelled (the stream is destroyed and emits
 * 'close') or its signal aborted.
 */
function writable(call: ServerWritableStream<Message, Message>, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      call.off("drain", done);
      call.off("close", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    call.on("drain", done);
    call.on("close", done);
    signal.addEventListener("abort", done, { once: true });
  });
}

function serverStreamingCall(
  method: DescMethod,
  handler: ServerStreamingHandler,
  logger: Logger,
  streams: Streams,
): (call: ServerWritableStream<Message, Message>) => void {
  const rpc = rpcName(method);
  return (call) => {
    const abort = new AbortController();
    // "cancelled": the client cancelled, the deadline passed, or the connection went away (grpc-js then
    // destroys the stream, so there is no one left to send a status to).
    const onCancelled = (): void => abort.abort(cancelReason(call));
    call.once("cancelled", onCancelled);
    if (streams.draining) {
      abort.abort(shuttingDown());
    }
    streams.live.add(abort);
    void pump(call, handler, abort.signal, rpc, logger).finally(() => {
      streams.live.delete(abort);
      call.off("cancelled", onCancelled);
    });
  };
}

/** Writes what the handler yields, respecting backpressure, then ends the call with OK or the error's status. */
async function pump(
  call: ServerWritableStream<Message, Message>,
  handler: ServerStreamingHandler,
  signal: AbortSignal,
  rpc: string,
  logger: Logger,
): Promise<void> {
  let it: AsyncIterator<Message> | undefined;
  let failure: ConnectError | undefined;
  try {
    if (!signal.aborted) {
      it = handler(call.request, { signal })[Symbol.asyncIterator]();
      for (;;) {
        const r = await nextOrAborted(it, signal);
        if (r === ABORTED || r.done === true || signal.aborted) {
          break;
        }
        if (!call.write(r.value)) {
          await writable(call, signal);
        }
      }
    }
  } catch (thrown) {
    failure = toWireError(thrown);
    if (failure !== thrown && !signal.aborted) {
      // Only reachable with a binding that did not go through instrument().
      logger.error({ rpc, err: thrown }, "handler threw a non-ConnectError");
    }
  } finally {
    // Done or failed: return() is a no-op. Aborted: the handler stops at its next yield.
    stopIterator(it);
  }
  if (call.cancelled || call.destroyed) {
    return; // cancelled: nobody to tell
  }
  // An aborted stream ends with the reason, however the handler ended (see ServerStreamingHandler).
  const err = signal.aborted ? abortedError(signal) : failure;
  if (err === undefined) {
    call.end(); // status OK once the buffered messages are written
  } else {
    // grpc-js's own 'error' listener turns this status (code, details, trailers) into the call's status, sent
    // after the buffered messages.
    call.emit("error", grpcStatusOf(err));
  }
}

/** The given files with every file they import, each once. */
function withDependencies(roots: readonly DescFile[]): DescFile[] {
  const seen = new Map<string, DescFile>();
  const visit = (file: DescFile): void => {
    if (seen.has(file.name)) {
      return;
    }
    seen.set(file.name, file);
    file.dependencies.forEach(visit);
  };
  roots.forEach(visit);
  return [...seen.values()];
}

type ReflectionPackage = ConstructorParameters<typeof ReflectionService>[0];

/**
 * The input @grpc/reflection wants, built from the descriptors compiled into the generated
 * code instead of parsing .proto files at runtime. Its constructor (reflection-v1.js and
 * -v1alpha.js, v1.0.4) only does `Object.values(pkg).forEach(({ fileDescriptorProtos }) => ...)`
 * and decodes each Buffer as a FileDescriptorProto; it then indexes symbols and links files
 * by the type references it finds. So one entry holding every serialized file is enough. The
 * entry's other fields exist only to satisfy proto-loader's PackageDefinition type.
 *
 * Besides the services' files: google/rpc/error_details.proto and status.proto, so a reflection
 * client can resolve google.rpc.ErrorInfo to decode grpc-status-details-bin, and
 * grpc/health/v1/health.proto, so it can call grpc.health.v1.Health (checked with buf curl).
 */
export function reflectionPackage(services: readonly DescService[]): ReflectionPackage {
  const files = withDependencies([
    ...services.map((s) => s.file),
    file_google_rpc_error_details,
    file_google_rpc_status,
  ]);
  const fileDescriptorProtos = [...files.map((file) => file.proto), HEALTH_FILE_DESCRIPTOR].map((proto) =>
    asBuffer(toBinary(FileDescriptorProtoSchema, proto)),
  );
  return {
    "creditd.reflection": {
      format: "Protocol Buffer 3 EnumDescriptorProto",
      type: {},
      fileDescriptorProtos,
    },
  };
}

function bind(server: Server, addr: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(addr, ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port)));
  });
}

/** Starts serving; resolves once the port is bound (grpc-js >= 1.10 starts serving on bind). */
export async function startGrpcServer(options: GrpcServerOptions): Promise<GrpcServerHandle> {
  const { addr, bindings, logger } = options;
  const server = new Server({ ...DEFAULT_SERVER_OPTIONS, ...options.serverOptions });
  const streams: Streams = { live: new Set(), draining: false };

  for (const binding of bindings) {
    const implementation: UntypedServiceImplementation = {};
    for (const method of binding.service.methods) {
      const unary = handlerOf(binding, method);
      const streaming = streamingHandlerOf(binding, method);
      if (unary !== undefined) {
        implementation[method.name] = unaryCall(method, unary, logger);
      } else if (streaming !== undefined) {
        implementation[method.name] = serverStreamingCall(method, streaming, logger, streams);
      } else if (method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming") {
        logger.warn({ rpc: rpcName(method) }, "client and bidi streaming RPCs are not served");
      } // else: grpc-js installs its UNIMPLEMENTED handler
    }
    server.addService(grpcServiceDefinition(binding.service), implementation);
  }

  const services = bindings.map((b) => b.service);
  new ReflectionService(reflectionPackage(services)).addToServer(server);

  const healthNames = ["", ...services.map((s) => s.typeName)];
  const initial = (options.serving ?? true) ? "SERVING" : "NOT_SERVING";
  const health = new HealthImplementation(Object.fromEntries(healthNames.map((name) => [name, initial])));
  health.addToServer(server);

  const port = await bind(server, addr);
  logger.info({ addr, port }, "grpc listening");

  return {
    port,
    health: {
      setServing(serving) {
        const status = serving ? "SERVING" : "NOT_SERVING";
        for (const name of healthNames) {
          health.setStatus(name, status);
        }
      },
    },
    shutdown(timeoutMs) {
      // A stream (WatchEvents) may never finish by itself: end them all now, so the wait below is for unary calls.
      streams.draining = true;
      for (const abort of streams.live) {
        abort.abort(shuttingDown());
      }
      return new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          logger.warn({ timeoutMs }, "grpc calls still running at shutdown deadline; cancelling them");
          // Cancels in-flight calls (their handlers' signals abort) and closes every connection;
          // tryShutdown's callback then fires too.
          server.forceShutdown();
        }, timeoutMs);
        server.tryShutdown((err) => {
          clearTimeout(timer);
          if (err) {
            logger.warn({ err }, "grpc shutdown");
          }
          resolve();
        });
      });
    },
  };
}
