import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import {
  type CreditService,
  EstimateResponseSchema,
  EstimateSchema,
  GetBalanceResponseSchema,
  GetCatalogResponseSchema,
  ReserveResponseSchema,
  RefundResponseSchema,
  SettleResponseSchema,
} from "../gen/creditd/v1/credit_service_pb.js";
import type { Receipt } from "../gen/creditd/v1/pricing_pb.js";
import { ReservationState } from "../gen/creditd/v1/types_pb.js";
import type { Ledger } from "../ledger/ledger.js";
import type { ServiceHandlers } from "../rpc/types.js";
import { encodeQuantities } from "../usage/quantities.js";
import { MAX_USAGE_NAME_CHARS } from "../usage/records.js";
import { toAmounts, toBucket } from "./convert.js";
import { Reason, domainError, formatCredits, invalidField } from "./errors.js";
import type { Pricer } from "./pricing.js";
import { parseReceiptJson } from "./receipt-json.js";
import { toMemberUsage, toPeriodSummary, toWarnings } from "./subscriptions.js";
import * as v from "./validate.js";

export interface CreditServiceOptions {
  ledger: Ledger;
  pricer: Pricer;
  holdTtlDefaultSeconds: number;
  holdTtlMaxSeconds: number;
}

/** Estimate prices at most this many requests per call. */
export const MAX_ESTIMATE_REQUESTS = 100;

/** The proxy's calls. Validation first (nothing reaches Redis on bad input), then one ledger call each. */
export function creditService(opts: CreditServiceOptions): ServiceHandlers<typeof CreditService> {
  const { ledger, pricer } = opts;
  const ttlNote = ` (0 takes the default, ${opts.holdTtlDefaultSeconds})`;

  return {
    async reserve(req) {
      const accountId = v.accountId("account_id", req.accountId);
      const requestId = v.idempotencyKey("request_id", req.requestId);
      const memberId = req.memberId === "" ? "" : v.accountId("member_id", req.memberId);
      // A priced request's operation and model, as the proxy named them, are kept with the reservation: its usage
      // records, the usage summary and exports name them.
      const usage =
        req.cost.case === "priced"
          ? {
              operation: v.text("priced.operation", req.cost.value.operation, MAX_USAGE_NAME_CHARS),
              model: v.text("priced.model", req.cost.value.model, MAX_USAGE_NAME_CHARS),
            }
          : undefined;
      const ttlSeconds =
        v.intInRange("ttl_seconds", req.ttlSeconds, 0, opts.holdTtlMaxSeconds, ttlNote) || opts.holdTtlDefaultSeconds;
      if (req.cost.case === undefined) throw invalidField("amount_micros", "required (or priced)");
      const priced = req.cost.case === "priced" ? await pricer.priceHold("priced", accountId, req.cost.value) : undefined;
      const amountMicros = priced
        ? priced.amountMicros
        : v.micros("amount_micros", req.cost.case === "amountMicros" ? req.cost.value : undefined, { allowZero: false });

      // A free operation holds 0: it still gets its reservation, its Settle and its ledger entries.
      const r = await ledger.reserve({
        accountId,
        requestId,
        amountMicros,
        ttlMs: ttlSeconds * 1000,
        memberId,
        ...(priced
          ? {
              fingerprint: priced.fingerprint,
              pricing: { context: priced.context, catalogVersion: priced.catalogVersion },
              ...(usage ? { usage } : {}),
            }
          : {}),
      });
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
            warnings: toWarnings(r.warnings),
            ...(priced ? { estimate: priced.receipt, maxOutputTokens: BigInt(priced.maxOutputTokens) } : {}),
          });
        case "insufficient":
          throw domainError(
            Code.ResourceExhausted,
            Reason.InsufficientCredits,
            `insufficient credits: available ${formatCredits(r.availableMicros)}, required ${formatCredits(r.requiredMicros)}`,
            { available_micros: String(r.availableMicros), required_micros: String(r.requiredMicros) },
          );
        case "member_cap":
          throw domainError(
            Code.ResourceExhausted,
            Reason.MemberCapExceeded,
            `member ${memberId} would pass the per-member cap of this period: cap ${formatCredits(r.capMicros)}, ` +
              `used ${formatCredits(r.usedMicros)}, held ${formatCredits(r.heldMicros)}, ` +
              `required ${formatCredits(amountMicros)}`,
            {
              member_id: memberId,
              cap_micros: String(r.capMicros),
              used_micros: String(r.usedMicros),
              held_micros: String(r.heldMicros),
              required_micros: String(amountMicros),
            },
          );
        case "amount_conflict":
          throw domainError(
            Code.AlreadyExists,
            Reason.RequestIdConflict,
            `request_id ${requestId} was already used for a different request (held ${r.firstAmountMicros} micros)`,
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
      let chargeMicros: number;
      let receipt: { message: Receipt; json: string } | undefined;
      let quantities = "";
      if (req.cost.case === "usage") {
        const held = await ledger.reservation(reservation.accountId, reservation.requestId);
        if (!held) throw notFound(req.reservationId);
        if (!held.pricing) {
          throw domainError(
            Code.FailedPrecondition,
            Reason.NotPriced,
            `usage: reservation ${req.reservationId} was made with amount_micros; settle it with charge_micros`,
            { reservation_id: req.reservationId },
          );
        }
        const priced = await pricer.priceUsage(reservation.accountId, held.pricing, req.cost.value);
        chargeMicros = priced.chargeMicros;
        receipt = { message: priced.receipt, json: priced.receiptJson };
        quantities = encodeQuantities(priced.quantities);
      } else {
        chargeMicros = v.micros("charge_micros", req.cost.case === "chargeMicros" ? req.cost.value : undefined, {
          allowZero: true,
        });
      }

      const r = await ledger.settle(reservation, chargeMicros, receipt?.json ?? "", quantities);
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
            warnings: toWarnings(r.warnings),
            // A replay answers with the receipt the first Settle stored.
            ...(r.receipt ? { receipt: r.status === "replayed" ? parseReceiptJson(r.receipt) : receipt?.message } : {}),
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
      const memberId = req.memberId === "" ? "" : v.accountId("member_id", req.memberId);
      const b = await ledger.balance(accountId, memberId);
      return create(GetBalanceResponseSchema, {
        accountId,
        availableMicros: BigInt(b.availableMicros),
        heldMicros: BigInt(b.heldMicros),
        buckets: b.buckets.map(toBucket),
        grantedMicros: BigInt(b.grantedMicros),
        chargedMicros: BigInt(b.chargedMicros),
        expiredMicros: BigInt(b.expiredMicros),
        period: toPeriodSummary(b.period),
        member: toMemberUsage(b.member),
      });
    },

    async estimate(req) {
      if (req.requests.length === 0) throw invalidField("requests", "required: at least one request");
      if (req.requests.length > MAX_ESTIMATE_REQUESTS) {
        throw invalidField("requests", `at most ${MAX_ESTIMATE_REQUESTS} per call`);
      }
      // Counting is scoped to no account here: an estimate may come before any account exists.
      const items = [];
      for (const [i, p] of req.requests.entries()) items.push(await pricer.estimate(`requests[${i}]`, "", p));
      return create(EstimateResponseSchema, {
        totalMicros: items.reduce((sum, it) => sum + (it.receipt.totalMicros ?? 0n), 0n),
        items: items.map((it) => create(EstimateSchema, { receipt: it.receipt, maxOutputTokens: BigInt(it.maxOutputTokens) })),
      });
    },

    async getCatalog() {
      const c = pricer.catalog;
      return create(GetCatalogResponseSchema, {
        version: c.version,
        name: c.name ?? "",
        path: c.path ?? "",
        source: c.source,
        loadedAt: timestampFromMs(pricer.catalogLoadedAtMs),
      });
    },
  };
}

export function notFound(reservationId: string) {
  return domainError(Code.NotFound, Reason.ReservationNotFound, `reservation_id: no reservation ${reservationId}`, {
    reservation_id: reservationId,
  });
}
