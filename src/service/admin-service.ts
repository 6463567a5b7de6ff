import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import {
  type AdminService,
  CancelAddonResponseSchema,
  EndSubscriptionResponseSchema,
  GetReservationResponseSchema,
  GetSubscriptionResponseSchema,
  SetSubscriptionResponseSchema,
  SubscriptionChange,
  GrantResponseSchema,
  ReservationSchema,
} from "../gen/creditd/v1/admin_service_pb.js";
import type { Ledger } from "../ledger/ledger.js";
import type { Catalog } from "../pricing/catalog.js";
import type { ServiceHandlers } from "../rpc/types.js";
import { kindName, optionalTimestamp, stateOf, toAmounts, toBucket } from "./convert.js";
import { notFound } from "./credit-service.js";
import { Reason, domainError, invalidField } from "./errors.js";
import * as subs from "./subscriptions.js";
import * as v from "./validate.js";

/** Operators' calls. A later change guards this service; it is kept separate from the proxy's calls for that. */
export function adminService(opts: { ledger: Ledger; catalog: () => Catalog }): ServiceHandlers<typeof AdminService> {
  const { ledger } = opts;
  return {
    async setSubscription(req) {
      const r = await subs.setSubscription(ledger, opts.catalog(), req);
      return create(SetSubscriptionResponseSchema, {
        subscription: subs.toSubscription(r.subscription),
        change: subs.changeOf(r.outcome),
      });
    },

    async getSubscription(req) {
      const accountId = v.accountId("account_id", req.accountId);
      const s = await ledger.subscription(accountId);
      if (!s) throw subs.subscriptionNotFound(accountId);
      return create(GetSubscriptionResponseSchema, { subscription: subs.toSubscription(s) });
    },

    async cancelAddon(req) {
      const r = await subs.cancelAddon(ledger, req);
      return create(CancelAddonResponseSchema, {
        subscription: subs.toSubscription(r.subscription),
        changed: subs.changeOf(r.outcome) !== SubscriptionChange.UNCHANGED,
      });
    },

    async endSubscription(req) {
      const r = await subs.endSubscription(ledger, req);
      return create(EndSubscriptionResponseSchema, {
        subscription: subs.toSubscription(r.subscription),
        changed: subs.changeOf(r.outcome) !== SubscriptionChange.UNCHANGED,
      });
    },

    async grant(req) {
      const accountId = v.accountId("account_id", req.accountId);
      const grantId = v.idempotencyKey("grant_id", req.grantId);
      const amountMicros = v.micros("amount_micros", req.amountMicros, { allowZero: false });
      const kind = kindName(req.kind);
      if (!kind) throw invalidField("kind", "required: one of allowance, addon, topup, trial, promo, adjustment");
      const priority = v.intInRange("priority", req.priority, 0, 1000, " (0 takes the kind's default)");
      const expiresAtMs = v.optionalTime("expires_at", req.expiresAt);

      const r = await ledger.grant({ accountId, grantId, amountMicros, kind, priority, expiresAtMs });
      switch (r.status) {
        case "granted":
        case "replayed":
          return create(GrantResponseSchema, {
            bucket: toBucket(r.bucket),
            availableMicros: BigInt(r.availableMicros),
            replayed: r.status === "replayed",
          });
        case "grant_conflict":
          throw domainError(
            Code.AlreadyExists,
            Reason.GrantIdConflict,
            `grant_id ${grantId} was already used for a different grant (amount_micros ${r.first.amountMicros}, kind ${r.first.kind})`,
            { grant_id: grantId, first_amount_micros: String(r.first.amountMicros), first_kind: r.first.kind },
          );
        case "expires_in_past":
          throw invalidField("expires_at", `must be in the future (now is ${new Date(r.nowMs).toISOString()})`);
        case "overflow":
          throw invalidField(
            "amount_micros",
            `the account's total granted would pass ${Number.MAX_SAFE_INTEGER} micros (room left: ${r.headroomMicros})`,
          );
      }
    },

    async getReservation(req) {
      const { accountId, requestId } = v.reservationId("reservation_id", req.reservationId);
      const r = await ledger.reservation(accountId, requestId);
      if (!r) throw notFound(req.reservationId);
      return create(GetReservationResponseSchema, {
        reservation: create(ReservationSchema, {
          reservationId: r.reservationId,
          accountId: r.accountId,
          requestId: r.requestId,
          state: stateOf(r.state),
          heldMicros: BigInt(r.heldMicros),
          chargedMicros: BigInt(r.chargedMicros),
          releasedMicros: BigInt(r.releasedMicros),
          refundedMicros: BigInt(r.refundedMicros),
          uncoveredMicros: BigInt(r.uncoveredMicros),
          createdAt: timestampFromMs(r.createdAtMs),
          expiresAt: timestampFromMs(r.expiresAtMs),
          settledAt: optionalTimestamp(r.settledAtMs),
          refundedAt: optionalTimestamp(r.refundedAtMs),
          holdExpired: r.holdExpired,
          heldFrom: toAmounts(r.heldFrom),
          chargedFrom: toAmounts(r.chargedFrom),
          refundReason: r.refundReason,
        }),
      });
    },
  };
}
