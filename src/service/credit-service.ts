import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import {
  type CreditService,
  GetBalanceResponseSchema,
  ReserveResponseSchema,
  RefundResponseSchema,
  SettleResponseSchema,
} from "../gen/creditd/v1/credit_service_pb.js";
import { ReservationState } from "../gen/creditd/v1/types_pb.js";
import type { Ledger } from "../ledger/ledger.js";
import type { ServiceHandlers } from "../rpc/types.js";
import { toAmounts, toBucket } from "./convert.js";
import { Reason, domainError, formatCredits, invalidField } from "./errors.js";
import * as v from "./validate.js";

export interface CreditServiceOptions {
  ledger: Ledger;
  holdTtlDefaultSeconds: number;
  holdTtlMaxSeconds: number;
}

/** The proxy's calls. Validation first (nothing reaches Redis on bad input), then one ledger call each. */
export function creditService(opts: CreditServiceOptions): ServiceHandlers<typeof CreditService> {
  const { ledger } = opts;
  const ttlNote = ` (0 takes the default, ${opts.holdTtlDefaultSeconds})`;

  return {
    async reserve(req) {
      const accountId = v.accountId("account_id", req.accountId);
      const requestId = v.idempotencyKey("request_id", req.requestId);
      if (req.cost.case !== "amountMicros") throw invalidField("amount_micros", "required");
      const amountMicros = v.micros("amount_micros", req.cost.value, { allowZero: false });
      const ttlSeconds =
        v.intInRange("ttl_seconds", req.ttlSeconds, 0, opts.holdTtlMaxSeconds, ttlNote) || opts.holdTtlDefaultSeconds;

      const r = await ledger.reserve({ accountId, requestId, amountMicros, ttlMs: ttlSeconds * 1000 });
      switch (r.status) {
        case "held":
        case "replayed":
          return create(ReserveResponseSchema, {
            reservationId: r.reservationId,
            heldMicros: BigInt(r.heldMicros),
            availableMicros: BigInt(r.availableMicros),
            expiresAt: timestampFromMs(r.expiresAtMs),
            replayed: r.status === "replayed",
            heldFrom: toAmounts(r.heldFrom),
          });
        case "insufficient":
          throw domainError(
            Code.ResourceExhausted,
            Reason.InsufficientCredits,
            `insufficient credits: available ${formatCredits(r.availableMicros)}, required ${formatCredits(r.requiredMicros)}`,
            { available_micros: String(r.availableMicros), required_micros: String(r.requiredMicros) },
          );
        case "amount_conflict":
          throw domainError(
            Code.AlreadyExists,
            Reason.RequestIdConflict,
            `request_id ${requestId} was already used with amount_micros ${r.firstAmountMicros}`,
            { request_id: requestId, first_amount_micros: String(r.firstAmountMicros) },
          );
        case "request_id_taken":
          // The other account is not named: it may belong to another tenant.
          throw domainError(
            Code.AlreadyExists,
            Reason.RequestIdConflict,
            `request_id ${requestId} was already used for another account`,
            { request_id: requestId },
          );
      }
    },

    async settle(req) {
      const reservation = v.reservationId("reservation_id", req.reservationId);
      if (req.cost.case !== "chargeMicros") throw invalidField("charge_micros", "required");
      const chargeMicros = v.micros("charge_micros", req.cost.value, { allowZero: true });

      const r = await ledger.settle(reservation, chargeMicros);
      switch (r.status) {
        case "settled":
        case "replayed":
          return create(SettleResponseSchema, {
            chargedMicros: BigInt(r.chargedMicros),
            releasedMicros: BigInt(r.releasedMicros),
            availableMicros: BigInt(r.availableMicros),
            holdExpired: r.holdExpired,
            uncoveredMicros: BigInt(r.uncoveredMicros),
            replayed: r.status === "replayed",
          });
        case "not_found":
          throw notFound(req.reservationId);
        case "charge_conflict":
          throw domainError(
            Code.AlreadyExists,
            Reason.AlreadySettled,
            `reservation ${req.reservationId} was already settled with charge_micros ${r.firstChargeMicros}`,
            { reservation_id: req.reservationId, charge_micros: String(r.firstChargeMicros) },
          );
        case "refunded":
          throw domainError(
            Code.FailedPrecondition,
            Reason.AlreadyRefunded,
            `reservation ${req.reservationId} was refunded and cannot be settled`,
            { reservation_id: req.reservationId },
          );
      }
    },

    async refund(req) {
      const reservation = v.reservationId("reservation_id", req.reservationId);
      const reason = v.text("reason", req.reason, 256);

      const r = await ledger.refund(reservation, reason);
      if (r.status === "not_found") throw notFound(req.reservationId);
      return create(RefundResponseSchema, {
        refundedMicros: BigInt(r.refundedMicros),
        availableMicros: BigInt(r.availableMicros),
        expiredMicros: BigInt(r.expiredMicros),
        state: r.state === "expired" ? ReservationState.EXPIRED : ReservationState.REFUNDED,
        replayed: r.status === "replayed",
      });
    },

    async getBalance(req) {
      const accountId = v.accountId("account_id", req.accountId);
      const b = await ledger.balance(accountId);
      return create(GetBalanceResponseSchema, {
        accountId,
        availableMicros: BigInt(b.availableMicros),
        heldMicros: BigInt(b.heldMicros),
        buckets: b.buckets.map(toBucket),
        grantedMicros: BigInt(b.grantedMicros),
        chargedMicros: BigInt(b.chargedMicros),
        expiredMicros: BigInt(b.expiredMicros),
      });
    },
  };
}

export function notFound(reservationId: string) {
  return domainError(Code.NotFound, Reason.ReservationNotFound, `reservation_id: no reservation ${reservationId}`, {
    reservation_id: reservationId,
  });
}
