import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";

/** The ErrorInfo domain of every error creditd returns. */
export const ERROR_DOMAIN = "creditd";

/**
 * Every reason creditd puts in a google.rpc.ErrorInfo, with the status code it travels with.
 * A client branches on the reason; the message is for people.
 */
export const Reason = {
  /** INVALID_ARGUMENT: metadata.field names the bad field. */
  InvalidField: "INVALID_FIELD",
  /** RESOURCE_EXHAUSTED: metadata available_micros, required_micros. Nothing was held. */
  InsufficientCredits: "INSUFFICIENT_CREDITS",
  /** ALREADY_EXISTS: the request_id was used before with another amount, or on another account. */
  RequestIdConflict: "REQUEST_ID_CONFLICT",
  /** ALREADY_EXISTS: the grant_id was used before for a different grant. */
  GrantIdConflict: "GRANT_ID_CONFLICT",
  /** ALREADY_EXISTS: the reservation was settled before with another charge (metadata charge_micros). */
  AlreadySettled: "ALREADY_SETTLED",
  /** FAILED_PRECONDITION: a Settle after the reservation was refunded. */
  AlreadyRefunded: "ALREADY_REFUNDED",
  /** NOT_FOUND: no such reservation (never made, or past its retention). */
  ReservationNotFound: "RESERVATION_NOT_FOUND",
  /** FAILED_PRECONDITION: the priced request's worst case is above its max_credits_micros (metadata required_micros). */
  MaxCreditsExceeded: "MAX_CREDITS_EXCEEDED",
  /** FAILED_PRECONDITION: Settle with usage, but the catalog version of the hold is gone; settle with charge_micros. */
  CatalogVersionGone: "CATALOG_VERSION_GONE",
  /** FAILED_PRECONDITION: Settle with usage of a reservation made with an explicit amount. */
  NotPriced: "NOT_PRICED",
  /**
   * RESOURCE_EXHAUSTED: the workspace member would pass the per-member cap of this period (metadata member_id,
   * cap_micros, used_micros, held_micros, required_micros). Nothing was held.
   */
  MemberCapExceeded: "MEMBER_CAP_EXCEEDED",
  /** NOT_FOUND: the account has no subscription (or, for CancelAddon, not that add-on). */
  SubscriptionNotFound: "SUBSCRIPTION_NOT_FOUND",
  /** UNAVAILABLE: too many large texts are being counted; retry. */
  CountingOverloaded: "COUNTING_OVERLOADED",
} as const;

export function domainError(
  code: Code,
  reason: string,
  message: string,
  metadata: Record<string, string> = {},
): ConnectError {
  return new ConnectError(message, code, undefined, [
    { desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { reason, domain: ERROR_DOMAIN, metadata }) },
  ]);
}

/** Bad input: INVALID_ARGUMENT whose message starts with the field name, as `field: what is wrong`. */
export function invalidField(field: string, problem: string): ConnectError {
  return domainError(Code.InvalidArgument, Reason.InvalidField, `${field}: ${problem}`, { field });
}

const MICROS_PER_CREDIT = 1_000_000n;

/** 70_500_000 micros → "70.5": credits as a person reads them, exactly (no floating point). */
export function formatCredits(micros: number | bigint): string {
  const m = BigInt(micros);
  const sign = m < 0n ? "-" : "";
  const abs = m < 0n ? -m : m;
  const whole = abs / MICROS_PER_CREDIT;
  const frac = (abs % MICROS_PER_CREDIT).toString().padStart(6, "0").replace(/0+$/, "");
  return `${sign}${whole}${frac ? `.${frac}` : ""}`;
}
