// What grpcurl does: discover the services through server reflection, fetch their descriptors, and call a
// method with messages encoded and decoded only with those descriptors (no generated code for the call).
import { createRequire } from "node:module";
import { type DescMessage, type FileRegistry, create, createFileRegistry, fromBinary, toBinary, toJson } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { type Client, type ClientDuplexStream, type ServiceError, credentials, loadPackageDefinition, status as GrpcStatus } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type TestRedis, startTestRedis } from "../support/redis.js";
import { type ServerProcess, startServer } from "../support/server-process.js";
import { uniquePrefix } from "./clients.js";

const require = createRequire(import.meta.url);
const REFLECTION_PROTO = require.resolve("@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto");

// grpc.reflection.v1 messages as @grpc/proto-loader decodes them (keepCase, oneofs).
interface ReflectionRequest {
  list_services?: string;
  file_containing_symbol?: string;
  file_by_filename?: string;
}
interface ReflectionResponse {
  message_response: "list_services_response" | "file_descriptor_response" | "error_response";
  list_services_response?: { service: Array<{ name: string }> };
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  error_response?: { error_code: number; error_message: string };
}
type ReflectionStream = ClientDuplexStream<ReflectionRequest, ReflectionResponse>;

function reflectionClient(addr: string): Client & { ServerReflectionInfo(): ReflectionStream } {
  const definition = loadSync(REFLECTION_PROTO, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  const pkg = loadPackageDefinition(definition) as unknown as {
    grpc: { reflection: { v1: { ServerReflection: new (addr: string, creds: ReturnType<typeof credentials.createInsecure>) => Client } } };
  };
  return new pkg.grpc.reflection.v1.ServerReflection(addr, credentials.createInsecure()) as Client & {
    ServerReflectionInfo(): ReflectionStream;
  };
}

/** One request/response on the reflection stream (the server answers in order). */
class Reflection {
  private readonly stream: ReflectionStream;
  private readonly waiting: Array<{ resolve: (r: ReflectionResponse) => void; reject: (e: Error) => void }> = [];
  private failure: Error | undefined;

  constructor(client: ReturnType<typeof reflectionClient>) {
    this.stream = client.ServerReflectionInfo();
    this.stream.on("data", (res: ReflectionResponse) => this.waiting.shift()?.resolve(res));
    this.stream.on("error", (err: Error) => {
      this.failure = err;
      for (const w of this.waiting.splice(0)) w.reject(err);
    });
  }

  ask(req: ReflectionRequest): Promise<ReflectionResponse> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.stream.write(req);
    });
  }

  async files(req: ReflectionRequest): Promise<FileDescriptorProto[]> {
    const res = await this.ask(req);
    if (res.message_response !== "file_descriptor_response") {
      throw new Error(`reflection ${JSON.stringify(req)}: ${JSON.stringify(res.error_response ?? res)}`);
    }
    return res.file_descriptor_response!.file_descriptor_proto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes));
  }

  end(): void {
    this.stream.end();
  }
}

/** The files defining `symbol` and everything they import, by reflection only (as grpcurl resolves them). */
async function registryFor(reflection: Reflection, symbols: string[]): Promise<{ registry: FileRegistry; files: string[] }> {
  const byName = new Map<string, FileDescriptorProto>();
  for (const symbol of symbols) {
    for (const file of await reflection.files({ file_containing_symbol: symbol })) byName.set(file.name, file);
  }
  // The server may send dependencies along; ask for any it left out.
  for (let missing = findMissing(byName); missing.length > 0; missing = findMissing(byName)) {
    for (const name of missing) {
      for (const file of await reflection.files({ file_by_filename: name })) byName.set(file.name, file);
    }
  }
  // Reflection sends a file before its dependencies, so resolve imports by name rather than rely on the order
  // (createFileRegistry of a FileDescriptorSet wants dependencies first).
  const resolve = (name: string): FileDescriptorProto | undefined => byName.get(name);
  const registry = createFileRegistry(...[...byName.values()].map((file) => createFileRegistry(file, resolve)));
  return { registry, files: [...byName.keys()].sort() };
}

function findMissing(byName: Map<string, FileDescriptorProto>): string[] {
  return [...new Set([...byName.values()].flatMap((f) => f.dependency))].filter((d) => !byName.has(d));
}

function message(registry: FileRegistry, typeName: string): DescMessage {
  const desc = registry.getMessage(typeName);
  if (!desc) throw new Error(`${typeName} is not in the registry built from reflection`);
  return desc;
}

describe("e2e: server reflection (grpcurl-style)", () => {
  let redis: TestRedis;
  let server: ServerProcess;
  let client: ReturnType<typeof reflectionClient>;
  let reflection: Reflection;

  beforeAll(async () => {
    redis = await startTestRedis();
    server = await startServer({ env: { CREDITD_REDIS_URL: redis.url, CREDITD_KEY_PREFIX: uniquePrefix("refl") } });
    client = reflectionClient(server.grpcAddr);
    reflection = new Reflection(client);
  }, 180_000);

  afterAll(async () => {
    reflection?.end();
    client?.close();
    const exit = await server?.stop();
    await redis?.stop();
    expect(exit?.code, exit && `${exit.stdout}${exit.stderr}`).toBe(0);
  });

  it("lists the services", async () => {
    const res = await reflection.ask({ list_services: "" });
    expect(res.message_response).toBe("list_services_response");
    const names = res.list_services_response!.service.map((s) => s.name);
    expect(names).toEqual(expect.arrayContaining(["creditd.v1.CreditService", "creditd.v1.AdminService"]));
  });

  it("answers Grant and GetBalance with messages built only from reflected descriptors", async () => {
    const { registry, files } = await registryFor(reflection, ["creditd.v1.CreditService", "creditd.v1.AdminService"]);
    expect(files).toEqual(
      expect.arrayContaining([
        "creditd/v1/credit_service.proto",
        "creditd/v1/admin_service.proto",
        "creditd/v1/types.proto",
        "google/protobuf/timestamp.proto",
      ]),
    );
    const creditService = registry.getService("creditd.v1.CreditService");
    const adminService = registry.getService("creditd.v1.AdminService");
    expect(creditService?.methods.map((m) => m.name)).toEqual(["Reserve", "Settle", "Refund", "GetBalance", "Estimate", "GetCatalog"]);
    expect(adminService?.methods.map((m) => m.name)).toEqual(["Grant", "GetReservation", "SetSubscription", "GetSubscription", "CancelAddon", "EndSubscription"]);

    // Credits to read back: Grant, with the request message and the enum value resolved by name via reflection.
    const grantReq = message(registry, "creditd.v1.GrantRequest");
    const kindEnum = registry.getEnum("creditd.v1.BucketKind");
    const topup = kindEnum?.values.find((v) => v.name === "BUCKET_KIND_TOPUP")?.number;
    expect(topup).toBeDefined();
    const grantRes = await call(
      client,
      "/creditd.v1.AdminService/Grant",
      grantReq,
      message(registry, "creditd.v1.GrantResponse"),
      { accountId: "acme", grantId: "g1", amountMicros: 42_000_000n, kind: topup },
    );
    expect(toJson(message(registry, "creditd.v1.GrantResponse"), grantRes)).toMatchObject({
      bucket: { bucketId: "b1", kind: "BUCKET_KIND_TOPUP", remainingMicros: "42000000" },
      availableMicros: "42000000",
    });

    const method = creditService!.methods.find((m) => m.name === "GetBalance")!;
    // The method's types, as reflection named them, looked up again by name in the registry.
    expect(method.input.typeName).toBe("creditd.v1.GetBalanceRequest");
    expect(method.output.typeName).toBe("creditd.v1.GetBalanceResponse");
    const input = message(registry, method.input.typeName);
    const output = message(registry, method.output.typeName);
    const res = await call(client, `/${creditService!.typeName}/${method.name}`, input, output, { accountId: "acme" });
    expect(toJson(output, res)).toEqual({
      accountId: "acme",
      availableMicros: "42000000",
      buckets: [
        expect.objectContaining({ bucketId: "b1", kind: "BUCKET_KIND_TOPUP", remainingMicros: "42000000", grantedMicros: "42000000", grantId: "g1" }),
      ],
      grantedMicros: "42000000",
    });
  });

  it("serves google.rpc.ErrorInfo by reflection, so a client can decode error details", async () => {
    const { registry } = await registryFor(reflection, ["google.rpc.ErrorInfo", "google.rpc.Status"]);
    expect(registry.getMessage("google.rpc.ErrorInfo")?.fields.map((f) => f.name)).toEqual(["reason", "domain", "metadata"]);
    expect(registry.getMessage("google.rpc.Status")).toBeDefined();
  });

  it("answers NOT_FOUND for an unknown symbol", async () => {
    const res = await reflection.ask({ file_containing_symbol: "creditd.v1.NoSuchService" });
    expect(res.message_response).toBe("error_response");
    expect(res.error_response?.error_code).toBe(GrpcStatus.NOT_FOUND);
  });
});

/** A unary call whose messages are encoded and decoded with the given (reflected) descriptors. */
function call(
  client: Client,
  path: string,
  input: DescMessage,
  output: DescMessage,
  init: Record<string, unknown>,
): Promise<ReturnType<typeof fromBinary>> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      path,
      (msg: ReturnType<typeof create>) => Buffer.from(toBinary(input, msg)),
      (bytes: Buffer) => fromBinary(output, bytes),
      create(input, init),
      { deadline: Date.now() + 5000 },
      (err: ServiceError | null, res?: ReturnType<typeof fromBinary>) => (err ? reject(err) : resolve(res!)),
    );
  });
}
