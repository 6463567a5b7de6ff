import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { create } from "@bufbuild/protobuf";
import {
  type Bucket,
  type BucketAmount,
  BucketAmountSchema,
  BucketKind,
  BucketSchema,
  ReservationState,
} from "../gen/creditd/v1/types_pb.js";
import type { BucketState, Draw, ReservationStateName } from "../ledger/ledger.js";
import type { BucketKindName } from "../ledger/status.js";

/** Wire enum ↔ the name the ledger stores, in one place. */
const KIND_NAMES: Record<Exclude<BucketKind, BucketKind.UNSPECIFIED>, BucketKindName> = {
  [BucketKind.ALLOWANCE]: "allowance",
  [BucketKind.ADDON]: "addon",
  [BucketKind.TOPUP]: "topup",
  [BucketKind.TRIAL]: "trial",
  [BucketKind.PROMO]: "promo",
  [BucketKind.ADJUSTMENT]: "adjustment",
};
const KINDS_BY_NAME = new Map(Object.entries(KIND_NAMES).map(([k, name]) => [name, Number(k) as BucketKind]));

export function kindName(kind: BucketKind): BucketKindName | undefined {
  return (KIND_NAMES as Partial<Record<BucketKind, BucketKindName>>)[kind];
}

export function kindOf(name: string): BucketKind {
  return KINDS_BY_NAME.get(name as BucketKindName) ?? BucketKind.UNSPECIFIED;
}

const STATES: Record<ReservationStateName, ReservationState> = {
  held: ReservationState.HELD,
  settled: ReservationState.SETTLED,
  refunded: ReservationState.REFUNDED,
  expired: ReservationState.EXPIRED,
};

export function stateOf(name: ReservationStateName): ReservationState {
  return STATES[name];
}

/** 0 and null mean "none" in the ledger; on the wire that is an unset Timestamp. */
export function optionalTimestamp(ms: number | null): Timestamp | undefined {
  return ms ? timestampFromMs(ms) : undefined;
}

export function toBucket(b: BucketState): Bucket {
  return create(BucketSchema, {
    bucketId: b.bucketId,
    kind: kindOf(b.kind),
    remainingMicros: BigInt(b.remainingMicros),
    grantedMicros: BigInt(b.grantedMicros),
    priority: b.priority,
    expiresAt: optionalTimestamp(b.expiresAtMs),
    grantId: b.grantId,
    createdAt: optionalTimestamp(b.createdAtMs),
  });
}

export function toAmounts(draws: Draw[]): BucketAmount[] {
  return draws.map((d) => create(BucketAmountSchema, { bucketId: d.bucketId, amountMicros: BigInt(d.amountMicros) }));
}
