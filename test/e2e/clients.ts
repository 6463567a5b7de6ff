// Clients for the end-to-end tests: grpc-js clients built generically from the protobuf-es service descriptors
// (the same definitions the server serves), a Connect JSON caller over fetch, and error-detail decoding.

import { randomBytes } from "node:crypto";
import {
  type DescMessage,
  type DescMethodUnary,
  type DescService,
  type MessageInitShape,
  type MessageShape,
  create,
  fromBinary,
} from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import {
  type CallOptions,
  type Client,
  Metadata,
  type ServiceError,
  credentials,
  makeGenericClientConstructor,
} from "@grpc/grpc-js";
import { service as healthServiceDefinition } from "grpc-health-check";
import { type ErrorInfo, ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { type Status, StatusSchema } from "../../src/gen/google/rpc/status_pb.js";
import { grpcServiceDefinition } from "../../src/rpc/grpc-server.js";

/** A key prefix no other test uses: [A-Za-z0-9_-], at most 32 characters. */
export function uniquePrefix(tag: string): string {
  return `e2e-${tag}-${randomBytes(4).toString("hex")}`.slice(0, 32);
}

/** A grpc-js client of a protobuf-es service (methods under their proto names: Reserve, GetBalance, ...). */
export function grpcClient(service: DescService, addr: string): Client {
  const Ctor = makeGenericClientConstructor(grpcServiceDefinition(service), service.name);
  return new Ctor(addr, credentials.createInsecure());
}

type UnaryMethod = (
  req: unknown,
  metadata: Metadata,
  options: CallOptions,
  callback: (err: ServiceError | null, res?: unknown) => void,
) => unknown;

/** One unary call through a client from grpcClient(); rejects with the grpc-js ServiceError. 5 s deadline. */
export function unary<I extends DescMessage, O extends DescMessage>(
  client: Client,
  method: DescMethodUnary<I, O>,
  req: MessageInitShape<I>,
  opts: { deadlineMs?: number } = {},
): Promise<MessageShape<O>> {
  const fn = (client as unknown as Record<string, UnaryMethod>)[method.name];
  if (fn === undefined) throw new Error(`the client has no method ${method.name}`);
  return new Promise((resolve, reject) => {
    fn.call(
      client,
      create(method.input, req),
      new Metadata(),
      { deadline: Date.now() + (opts.deadlineMs ?? 5000) },
      (err, res) => {
        if (err) reject(err);
        else resolve(res as MessageShape<O>);
      },
    );
  });
}

export function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && "code" in err && "metadata" in err;
}

/** The rejection of a promise expected to reject, as a grpc-js ServiceError. */
export async function serviceError(p: Promise<unknown>): Promise<ServiceError> {
  let result: unknown;
  try {
    result = await p;
  } catch (err) {
    if (!isServiceError(err)) throw err;
    return err;
  }
  throw new Error(`expected the call to fail, it answered ${JSON.stringify(result, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v))}`);
}

/** The google.rpc.Status of grpc-status-details-bin, and the ErrorInfo packed in its details. */
export function statusDetails(err: ServiceError): { status: Status; errorInfo: ErrorInfo | undefined } {
  const values = err.metadata.get("grpc-status-details-bin");
  const raw = values[0];
  if (!(raw instanceof Buffer)) throw new Error(`no grpc-status-details-bin trailer (got ${JSON.stringify(err.metadata.getMap())})`);
  const status = fromBinary(StatusSchema, raw);
  let errorInfo: ErrorInfo | undefined;
  for (const any of status.details) {
    const unpacked = anyUnpack(any, ErrorInfoSchema);
    if (unpacked) errorInfo = unpacked;
  }
  return { status, errorInfo };
}

/** grpc.health.v1.Health client (the descriptor shipped with grpc-health-check). */
export function healthClient(addr: string): Client {
  const Ctor = makeGenericClientConstructor(healthServiceDefinition, "Health");
  return new Ctor(addr, credentials.createInsecure());
}

/** Health/Check: the status name ("SERVING", "NOT_SERVING", ...). Rejects with the ServiceError. */
export function healthCheck(client: Client, service = ""): Promise<string> {
  const fn = (client as unknown as Record<string, UnaryMethod>)["Check"]!;
  return new Promise((resolve, reject) => {
    fn.call(client, { service }, new Metadata(), { deadline: Date.now() + 3000 }, (err, res) => {
      if (err) reject(err);
      else resolve(String((res as { status: unknown }).status));
    });
  });
}

export interface JsonReply {
  status: number;
  contentType: string | null;
  body: Record<string, unknown>;
}

/** A Connect unary call with a JSON body: POST {baseUrl}/{service}/{method}. */
export async function postJson(baseUrl: string, path: string, body: unknown): Promise<JsonReply> {
  const res = await fetch(`${baseUrl}/${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new Error(`POST ${path}: HTTP ${res.status} with a body that is not JSON: ${text}`);
  }
  return { status: res.status, contentType: res.headers.get("content-type"), body: parsed };
}

/** A postJson that must succeed (HTTP 200): the body, or an error with the whole reply. */
export async function okJson(baseUrl: string, path: string, body: unknown): Promise<Record<string, unknown>> {
  const reply = await postJson(baseUrl, path, body);
  if (reply.status !== 200) throw new Error(`POST ${path}: HTTP ${reply.status} ${JSON.stringify(reply.body)}`);
  return reply.body;
}

export const CREDIT = 1_000_000n;
