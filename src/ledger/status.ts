/** The status codes the Lua scripts return first; each script's header says which it can return. */
export enum ScriptStatus {
  Ok = 0,
  /** The idempotency key was seen: the first reply, nothing changed. */
  Replayed = 1,
  Insufficient = -1,
  NotFound = -2,
  /** The idempotency key was used with different values. */
  Conflict = -3,
  SettledWithOtherCharge = -4,
  AlreadyRefunded = -5,
  ExpiresInPast = -6,
  Overflow = -7,
  /** A workspace member's cap for the period would be passed. */
  MemberCap = -8,
  /** A subscription change the current state does not allow. */
  BadTransition = -10,
  /** The request id belongs to another account (Reserve with its claim key). */
  RequestIdTaken = -11,
}

/** Bucket kinds and their default draw priority (lower is drawn first). */
export const BUCKET_KINDS = {
  allowance: { defaultPriority: 100 },
  addon: { defaultPriority: 200 },
  trial: { defaultPriority: 300 },
  promo: { defaultPriority: 300 },
  adjustment: { defaultPriority: 300 },
  topup: { defaultPriority: 400 },
} as const;

export type BucketKindName = keyof typeof BUCKET_KINDS;

/** The largest amount Lua holds exactly (its numbers are doubles): every amount and total stays at or below it. */
export const MAX_MICROS = Number.MAX_SAFE_INTEGER;
