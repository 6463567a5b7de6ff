// Server-streaming clients for tests, one interface over both edges: a grpc-js client (what gRPC users run) and
// connect-node's Connect transport with JSON over HTTP/1.1 (what the HTTP edge serves). Each test stream reads in
// the background into a queue, so a test can ask for the next message with a timeout, see how the stream ended,
// or cancel it.
import { type DescMessage, type DescMethodServerStreaming, type MessageInitShape, type MessageShape, create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import {
  type ClientReadableStream,
  Metadata,
  type ServiceError,
  credentials,
  makeGenericClientConstructor,
} from "@grpc/grpc-js";
import { grpcServiceDefinition } from "../../src/rpc/grpc-server.js";

/** How a stream ended: code 0 is OK; otherwise the Connect (= gRPC) code, its message and the raw error. */
export interface StreamEnd {
  code: number;
  message: string;
  error?: unknown;
}

export interface TestStream<T> {
  /** Every message received so far. */
  readonly received: readonly T[];
  /** The next message not yet taken; rejects when the stream ends first (with its end) or after timeoutMs. */
  next(timeoutMs?: number): Promise<T>;
  /** How the stream ended; rejects after timeoutMs. */
  ended(timeoutMs?: number): Promise<StreamEnd>;
  /** Whether it has ended. */
  readonly done: boolean;
  /** Cancels the call from the client side. */
  cancel(): void;
  /**
   * Stops reading (the transport's buffers fill up, then the server's writes wait), and resumes. gRPC only:
   * connect-node's client reads the response ahead of its consumer, so a test of the HTTP edge's backpressure
   * reads the response with node:http itself.
   */
  pause(): void;
  resume(): void;
}

class Queue<T> implements TestStream<T> {
  readonly received: T[] = [];
  private taken = 0;
  private end: StreamEnd | undefined;
  private wake: Array<() => void> = [];
  constructor(
    readonly cancel: () => void,
    readonly pause: () => void,
    readonly resume: () => void,
  ) {}

  get done(): boolean {
    return this.end !== undefined;
  }

  push(message: T): void {
    this.received.push(message);
    this.notify();
  }

  finish(end: StreamEnd): void {
    this.end ??= end;
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = [];
    for (const f of wake) f();
  }

  private async until(what: string, ready: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!ready()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  async next(timeoutMs = 5000): Promise<T> {
    await this.until("the next message", () => this.taken < this.received.length || this.end !== undefined, timeoutMs);
    if (this.taken < this.received.length) return this.received[this.taken++]!;
    const end = this.end!;
    throw Object.assign(new Error(`the stream ended (code ${end.code}: ${end.message}) before another message`), { end });
  }

  async ended(timeoutMs = 5000): Promise<StreamEnd> {
    await this.until("the end of the stream", () => this.end !== undefined, timeoutMs);
    return this.end!;
  }
}

/** A server-streaming call through a grpc-js client (generic, from the protobuf-es descriptor). */
export function grpcStream<I extends DescMessage, O extends DescMessage>(
  addr: string,
  method: DescMethodServerStreaming<I, O>,
  req: MessageInitShape<I>,
  opts: { deadlineMs?: number } = {},
): TestStream<MessageShape<O>> {
  const Ctor = makeGenericClientConstructor(grpcServiceDefinition(method.parent), method.parent.name);
  const client = new Ctor(addr, credentials.createInsecure());
  const fn = (client as unknown as Record<string, (...args: unknown[]) => ClientReadableStream<MessageShape<O>>>)[
    method.name
  ]!;
  const callOptions = opts.deadlineMs === undefined ? {} : { deadline: Date.now() + opts.deadlineMs };
  const call = fn.call(client, create(method.input, req), new Metadata(), callOptions);
  const q = new Queue<MessageShape<O>>(
    () => call.cancel(),
    () => call.pause(),
    () => call.resume(),
  );
  call.on("data", (m: MessageShape<O>) => q.push(m));
  call.on("error", (err: ServiceError) => {
    q.finish({ code: err.code, message: err.details, error: err });
    client.close();
  });
  call.on("status", (status: { code: number; details: string }) => {
    if (status.code === 0) {
      q.finish({ code: 0, message: status.details });
      client.close();
    }
  });
  return q;
}

/** A server-streaming call through connect-node with the Connect protocol, JSON, over HTTP/1.1. */
export function jsonStream<I extends DescMessage, O extends DescMessage>(
  baseUrl: string,
  method: DescMethodServerStreaming<I, O>,
  req: MessageInitShape<I>,
  opts: { timeoutMs?: number } = {},
): TestStream<MessageShape<O>> {
  const transport = createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false });
  const client = createClient(method.parent, transport) as unknown as Record<
    string,
    (req: MessageInitShape<I>, options: { signal: AbortSignal; timeoutMs?: number }) => AsyncIterable<MessageShape<O>>
  >;
  const abort = new AbortController();
  const unsupported = (): never => {
    throw new Error("jsonStream cannot pause: connect-node's client reads ahead of its consumer");
  };
  const q = new Queue<MessageShape<O>>(() => abort.abort(), unsupported, unsupported);
  const call = client[method.localName]!(req, {
    signal: abort.signal,
    ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
  });
  void (async () => {
    try {
      for await (const m of call) q.push(m);
      q.finish({ code: 0, message: "" });
    } catch (err) {
      const e = ConnectError.from(err);
      q.finish({ code: e.code, message: e.rawMessage, error: e });
    }
  })();
  return q;
}

/**
 * A handler's stream read in-process (no edge), e.g. eventService(...).watchEvents(req, { signal }); cancel()
 * aborts the signal given to the handler, as an edge does when its client goes away.
 */
export function localStream<T>(open: (signal: AbortSignal) => AsyncIterable<T>): TestStream<T> {
  const abort = new AbortController();
  const unsupported = (): never => {
    throw new Error("localStream cannot pause: read the handler's iterator by hand instead");
  };
  const q = new Queue<T>(() => abort.abort(new ConnectError("cancelled by the test", Code.Canceled)), unsupported, unsupported);
  void (async () => {
    try {
      for await (const m of open(abort.signal)) q.push(m);
      q.finish({ code: 0, message: "" });
    } catch (err) {
      const e = ConnectError.from(err);
      q.finish({ code: e.code, message: e.rawMessage, error: e });
    }
  })();
  return q;
}
