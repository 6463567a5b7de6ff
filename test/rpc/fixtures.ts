// Shared pieces for the RPC edge tests: fake handlers (no Redis), a log capture, and a
// generic grpc-js client built from protobuf-es descriptors.
import {
  type DescMessage,
  type DescMethodUnary,
  type MessageInitShape,
  type MessageShape,
  create,
  fromBinary,
  toBinary,
} from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { Client, type Metadata, type ServiceError, credentials } from "@grpc/grpc-js";
import { pino, type Logger } from "pino";
import {
  AdminService,
  GetReservationResponseSchema,
  GrantResponseSchema,
} from "../../src/gen/creditd/v1/admin_service_pb.js";
import {
  CreditService,
  GetBalanceResponseSchema,
  GetCatalogResponseSchema,
  RefundResponseSchema,
  ReserveResponseSchema,
  SettleResponseSchema,
} from "../../src/gen/creditd/v1/credit_service_pb.js";
import { BucketKind, ReservationState } from "../../src/gen/creditd/v1/types_pb.js";
import { ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import type { CallContext, ServiceBinding } from "../../src/rpc/types.js";

export const AVAILABLE = 70_000_000n;
export const SECRET = "secret cause";
export const INSUFFICIENT_MESSAGE = "insufficient credits: available 70, required 80";

export function insufficientCredits(required: bigint): ConnectError {
  return new ConnectError(INSUFFICIENT_MESSAGE, Code.ResourceExhausted, undefined, [
    {
      desc: ErrorInfoSchema,
      value: {
        reason: "INSUFFICIENT_CREDITS",
        domain: "creditd",
        metadata: { available_micros: AVAILABLE.toString(), required_micros: required.toString() },
      },
    },
  ]);
}

/**
 * Hooks a test can set to hold a call open (for shutdown tests) and see its context.
 * `gate` is awaited by Settle before it answers.
 */
export interface Probe {
  gate?: (ctx: CallContext) => Promise<void>;
  lastContext?: CallContext;
}

/** CreditService: Reserve answers, refuses above AVAILABLE, and throws a plain Error for request_id "boom". */
export function creditBinding(probe: Probe = {}): ServiceBinding<typeof CreditService> {
  return {
    service: CreditService,
    handlers: {
      async reserve(req, ctx) {
        probe.lastContext = ctx;
        if (req.requestId === "boom") {
          throw new Error(SECRET);
        }
        const amount = req.cost.case === "amountMicros" ? req.cost.value : 0n;
        if (amount > AVAILABLE) {
          throw insufficientCredits(amount);
        }
        return create(ReserveResponseSchema, {
          reservationId: `rsv_${req.requestId}`,
          heldMicros: amount,
          availableMicros: AVAILABLE - amount,
          expiresAt: timestampFromMs(1_700_000_000_000),
          heldFrom: [{ bucketId: "b1", amountMicros: amount }],
        });
      },
      async settle(req, ctx) {
        probe.lastContext = ctx;
        await probe.gate?.(ctx);
        const charge = req.cost.case === "chargeMicros" ? req.cost.value : 0n;
        return create(SettleResponseSchema, { chargedMicros: charge, availableMicros: AVAILABLE - charge });
      },
      async refund(req) {
        return create(RefundResponseSchema, {
          refundedMicros: 5n,
          availableMicros: AVAILABLE,
          state: req.reservationId === "" ? ReservationState.UNSPECIFIED : ReservationState.REFUNDED,
        });
      },
      async getBalance(req) {
        return create(GetBalanceResponseSchema, { accountId: req.accountId, availableMicros: AVAILABLE });
      },
      async estimate() {
        throw new ConnectError("not served by this fixture", Code.Unimplemented);
      },
      async getCatalog() {
        return create(GetCatalogResponseSchema, { version: "fixture", source: "operations: {}\n" });
      },
    },
  };
}

export function adminBinding(): ServiceBinding<typeof AdminService> {
  return {
    service: AdminService,
    handlers: {
      async grant(req) {
        return create(GrantResponseSchema, {
          bucket: { bucketId: req.grantId, kind: BucketKind.TOPUP, remainingMicros: req.amountMicros },
          availableMicros: req.amountMicros,
        });
      },
      async getReservation(req) {
        throw new ConnectError(`reservation ${req.reservationId} not found`, Code.NotFound);
      },
      async setSubscription() {
        throw new ConnectError("not served by this fixture", Code.Unimplemented);
      },
      async getSubscription() {
        throw new ConnectError("not served by this fixture", Code.Unimplemented);
      },
      async cancelAddon() {
        throw new ConnectError("not served by this fixture", Code.Unimplemented);
      },
      async endSubscription() {
        throw new ConnectError("not served by this fixture", Code.Unimplemented);
      },
    },
  };
}

export interface LogCapture {
  logger: Logger;
  lines: Array<Record<string, unknown>>;
  /** Every line as written, for "this text never appears" checks. */
  raw: string[];
}

export function captureLogs(): LogCapture {
  const lines: Array<Record<string, unknown>> = [];
  const raw: string[] = [];
  const logger = pino(
    { level: "debug" },
    {
      write(chunk: string) {
        raw.push(chunk);
        lines.push(JSON.parse(chunk) as Record<string, unknown>);
      },
    },
  );
  return { logger, lines, raw };
}

/** A plain grpc-js client (no generated stubs): calls go through makeUnaryRequest with protobuf-es codecs. */
export function grpcClient(port: number): Client {
  return new Client(`127.0.0.1:${port}`, credentials.createInsecure());
}

export interface UnaryResult<O extends DescMessage> {
  message: MessageShape<O>;
}

/** One unary call; rejects with the grpc-js ServiceError. Path is built here, independently of the server. */
export function callUnary<I extends DescMessage, O extends DescMessage>(
  client: Client,
  method: DescMethodUnary<I, O>,
  req: MessageInitShape<I>,
  metadata?: Metadata,
): Promise<MessageShape<O>> {
  const path = `/${method.parent.typeName}/${method.name}`;
  return new Promise((resolve, reject) => {
    const callback = (err: ServiceError | null, res?: MessageShape<O>): void => {
      if (err) reject(err);
      else if (res === undefined) reject(new Error("no response"));
      else resolve(res);
    };
    const serialize = (msg: MessageShape<I>): Buffer => Buffer.from(toBinary(method.input, msg));
    const deserialize = (buf: Buffer): MessageShape<O> => fromBinary(method.output, buf);
    const message = create(method.input, req);
    if (metadata) client.makeUnaryRequest(path, serialize, deserialize, message, metadata, callback);
    else client.makeUnaryRequest(path, serialize, deserialize, message, callback);
  });
}

export function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && "code" in err && "metadata" in err;
}

/** Awaits a promise expected to reject, returning the rejection. */
export async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected the promise to reject");
}
