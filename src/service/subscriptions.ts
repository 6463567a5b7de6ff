import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import type {
  CancelAddonRequest,
  EndSubscriptionRequest,
  SetSubscriptionRequest,
} from "../gen/creditd/v1/admin_service_pb.js";
import { EndWhen, SubscriptionChange } from "../gen/creditd/v1/admin_service_pb.js";
import {
  AddonStateSchema,
  BillingPeriod,
  type LowCreditWarning,
  LowCreditWarningSchema,
  type MemberUsage,
  MemberUsageSchema,
  type PeriodSummary,
  PeriodSummarySchema,
  ScheduledChangeSchema,
  type Subscription,
  SubscriptionSchema,
  SubscriptionStatus,
} from "../gen/creditd/v1/subscription_pb.js";
import type {
  Ledger,
  MemberUsage as LedgerMemberUsage,
  PeriodSummary as LedgerPeriod,
  SubscriptionOutcome,
  SubscriptionResult,
  SubscriptionStatus as StatusName,
  SubscriptionTerms,
  SubscriptionView,
} from "../ledger/ledger.js";
import type { Catalog } from "../pricing/catalog.js";
import { MAX_SEATS, resolvePlan } from "../pricing/plans.js";
import { optionalTimestamp } from "./convert.js";
import { Reason, domainError, invalidField } from "./errors.js";
import * as v from "./validate.js";

const DAY_MS = 86_400_000;

const STATUS: Record<StatusName, SubscriptionStatus> = {
  active: SubscriptionStatus.ACTIVE,
  trialing: SubscriptionStatus.TRIALING,
  past_due: SubscriptionStatus.PAST_DUE,
  ended: SubscriptionStatus.ENDED,
};

const CHANGE: Record<SubscriptionOutcome, SubscriptionChange> = {
  started: SubscriptionChange.STARTED,
  changed: SubscriptionChange.APPLIED,
  scheduled: SubscriptionChange.SCHEDULED,
  updated: SubscriptionChange.UPDATED,
  activated: SubscriptionChange.ACTIVATED,
  restarted: SubscriptionChange.RESTARTED,
  unchanged: SubscriptionChange.UNCHANGED,
  addon_cancelled: SubscriptionChange.APPLIED,
  ended: SubscriptionChange.APPLIED,
  end_scheduled: SubscriptionChange.SCHEDULED,
  get: SubscriptionChange.UNSPECIFIED,
};

/**
 * Validates a SetSubscription request against the catalog and turns it into the terms the ledger stores.
 */
export function subscriptionTerms(
  req: SetSubscriptionRequest,
  catalog: Catalog,
): SubscriptionTerms {
  if (req.planId === "") throw invalidField("plan_id", "required");
  const plan = resolvePlan(catalog, req.planId);
  if (!plan) {
    const known = [...catalog.plans.keys()];
    throw invalidField(
      "plan_id",
      `unknown plan ${JSON.stringify(req.planId)} (catalog ${catalog.version} has ${known.length ? known.join(", ") : "no plans"})`,
    );
  }
  const seats = req.seats === undefined ? undefined : v.intInRange("seats", req.seats, 1, MAX_SEATS);

  let status: SubscriptionTerms["status"];
  switch (req.status) {
    case SubscriptionStatus.UNSPECIFIED:
    case SubscriptionStatus.ACTIVE:
      status = "active";
      break;
    case SubscriptionStatus.PAST_DUE:
      status = "past_due";
      break;
    case SubscriptionStatus.TRIALING:
      if (!plan.trial) throw invalidField("status", `plan ${plan.id} has no trial`);
      status = "trialing";
      break;
    case SubscriptionStatus.ENDED:
      throw invalidField("status", "ENDED is not set here: call EndSubscription");
    default:
      throw invalidField("status", `unknown value ${String(req.status)}`);
  }

  const seen = new Set<string>();
  const addons = req.addons.map((a, i) => {
    const field = `addons[${i}]`;
    if (a.addonId === "") throw invalidField(`${field}.addon_id`, "required");
    const addon = plan.addons.get(a.addonId);
    if (!addon) {
      const known = [...plan.addons.keys()];
      throw invalidField(
        `${field}.addon_id`,
        `plan ${plan.id} has no add-on ${JSON.stringify(a.addonId)}${known.length ? ` (it has ${known.join(", ")})` : " (it has none)"}`,
      );
    }
    if (seen.has(addon.id)) throw invalidField(`${field}.addon_id`, `${addon.id} is listed twice`);
    seen.add(addon.id);
    const units = v.intInRange(`${field}.units`, a.units, 0, addon.maxUnits);
    return { id: addon.id, units, creditsPerUnitMicros: addon.creditsPerUnitMicros, perSeat: addon.perSeat };
  });

  const anchorMs = v.optionalTime("billing_anchor", req.billingAnchor) || undefined;
  let warnAtPercent: number[];
  if (req.clearWarnings) {
    if (req.warnAtPercent.length > 0) throw invalidField("warn_at_percent", "must be empty with clear_warnings");
    warnAtPercent = [];
  } else if (req.warnAtPercent.length === 0) {
    warnAtPercent = [...plan.warnAtPercent];
  } else {
    const seenPct = new Set<number>();
    warnAtPercent = req.warnAtPercent.map((p, i) => {
      const pct = v.intInRange(`warn_at_percent[${i}]`, p, 1, 99);
      if (seenPct.has(pct)) throw invalidField(`warn_at_percent[${i}]`, `${pct} is listed twice`);
      seenPct.add(pct);
      return pct;
    });
    warnAtPercent.sort((x, y) => y - x);
  }
  const memberCapMicros =
    req.memberCapMicros === undefined
      ? (plan.memberCapMicros ?? 0)
      : v.micros("member_cap_micros", req.memberCapMicros, { allowZero: true });

  return {
    planId: plan.id,
    period: plan.period,
    seats,
    creditsMicros: plan.unlimited ? 0 : plan.creditsMicros,
    creditsPerSeatMicros: plan.unlimited ? 0 : plan.creditsPerSeatMicros,
    unlimited: plan.unlimited,
    memberCapMicros,
    addons,
    status,
    anchorMs,
    trialCreditsMicros: plan.trial?.creditsMicros ?? 0,
    trialMs: (plan.trial?.days ?? 0) * DAY_MS,
    warnAtPercent,
  };
}

export function toSubscription(s: SubscriptionView): Subscription {
  const period = s.currentPeriod;
  return create(SubscriptionSchema, {
    accountId: s.accountId,
    planId: s.planId,
    status: STATUS[s.status],
    period: s.period === "year" ? BillingPeriod.YEAR : BillingPeriod.MONTH,
    billingAnchor: optionalTimestamp(s.anchorMs),
    seats: s.seats,
    allowancePerPeriodMicros: BigInt(s.unlimited ? 0 : s.creditsMicros + s.creditsPerSeatMicros * s.seats),
    unlimited: s.unlimited,
    memberCapMicros: BigInt(s.memberCapMicros),
    warnAtPercent: s.warnAtPercent,
    addons: s.addons.map((a) =>
      create(AddonStateSchema, {
        addonId: a.id,
        units: a.units,
        nextUnits: a.nextUnits,
        creditsPerUnitMicros: BigInt(a.creditsPerUnitMicros),
        perSeat: a.perSeat,
      }),
    ),
    startedAt: optionalTimestamp(s.startedAtMs),
    endedAt: optionalTimestamp(s.endedAtMs),
    trialEndsAt: optionalTimestamp(s.trialEndsAtMs),
    periodStart: optionalTimestamp(period?.startMs ?? null),
    periodEnd: optionalTimestamp(period?.endMs ?? null),
    usedMicros: BigInt(period?.usedMicros ?? 0),
    allowanceGrantedMicros: BigInt(s.allowance.grantedMicros),
    allowanceRemainingMicros: BigInt(s.allowance.remainingMicros),
    addonGrantedMicros: BigInt(s.addonCredits.grantedMicros),
    addonRemainingMicros: BigInt(s.addonCredits.remainingMicros),
    trialGrantedMicros: BigInt(s.trialCredits.grantedMicros),
    trialRemainingMicros: BigInt(s.trialCredits.remainingMicros),
    scheduled: s.scheduled
      ? create(ScheduledChangeSchema, {
          planId: s.scheduled.planId !== null && s.scheduled.planId !== s.planId ? s.scheduled.planId : "",
          seats: s.scheduled.seats !== null && s.scheduled.seats !== s.seats ? s.scheduled.seats : 0,
          endsAtPeriodEnd: s.scheduled.endsAtPeriodEnd,
          effectiveAt: optionalTimestamp(period?.endMs ?? null),
        })
      : undefined,
  });
}

export function toPeriodSummary(p: LedgerPeriod | null): PeriodSummary | undefined {
  if (!p) return undefined;
  return create(PeriodSummarySchema, {
    planId: p.plan,
    status: STATUS[p.status],
    periodStart: optionalTimestamp(p.startMs),
    periodEnd: optionalTimestamp(p.endMs),
    usedMicros: BigInt(p.usedMicros),
    allowanceMicros: BigInt(p.allowanceMicros),
    addonMicros: BigInt(p.addonMicros),
    trialMicros: BigInt(p.trialMicros),
    unlimited: p.unlimited,
  });
}

export function toMemberUsage(m: LedgerMemberUsage | null): MemberUsage | undefined {
  if (!m) return undefined;
  return create(MemberUsageSchema, {
    memberId: m.memberId,
    heldMicros: BigInt(m.heldMicros),
    usedMicros: BigInt(m.usedMicros),
    capMicros: BigInt(m.capMicros),
  });
}

/** The ledger's warnings ("20", "5", "depleted") as messages. */
export function toWarnings(list: string[]): LowCreditWarning[] {
  return list.map((w) =>
    w === "depleted"
      ? create(LowCreditWarningSchema, { percent: 0, depleted: true })
      : create(LowCreditWarningSchema, { percent: Number(w), depleted: false }),
  );
}

export function changeOf(outcome: SubscriptionOutcome): SubscriptionChange {
  return CHANGE[outcome];
}

export function subscriptionNotFound(accountId: string, detail = ""): Error {
  return domainError(
    Code.NotFound,
    Reason.SubscriptionNotFound,
    `account ${accountId} has no subscription${detail}`,
    { account_id: accountId },
  );
}

/** The ledger's answer to a change, or the error it means. */
export function expectSubscription(
  r: SubscriptionResult,
  accountId: string,
  notFoundDetail = "",
): { outcome: SubscriptionOutcome; subscription: SubscriptionView } {
  if (r.status === "ok") return r;
  if (r.status === "not_found") throw subscriptionNotFound(accountId, notFoundDetail);
  throw invalidField(r.field, r.message);
}

export async function setSubscription(ledger: Ledger, catalog: Catalog, req: SetSubscriptionRequest) {
  const accountId = v.accountId("account_id", req.accountId);
  // Everything is checked before anything reaches Redis; seats left unset are resolved by the script itself.
  const terms = subscriptionTerms(req, catalog);
  return expectSubscription(await ledger.setSubscription(accountId, terms), accountId);
}

export async function cancelAddon(ledger: Ledger, req: CancelAddonRequest) {
  const accountId = v.accountId("account_id", req.accountId);
  if (req.addonId === "") throw invalidField("addon_id", "required");
  const addonId = v.text("addon_id", req.addonId, 128);
  return expectSubscription(
    await ledger.cancelAddon(accountId, addonId),
    accountId,
    ` with add-on ${JSON.stringify(addonId)}`,
  );
}

export async function endSubscription(ledger: Ledger, req: EndSubscriptionRequest) {
  const accountId = v.accountId("account_id", req.accountId);
  let when: "now" | "period_end";
  switch (req.when) {
    case EndWhen.UNSPECIFIED:
    case EndWhen.NOW:
      when = "now";
      break;
    case EndWhen.PERIOD_END:
      when = "period_end";
      break;
    default:
      throw invalidField("when", `unknown value ${String(req.when)}`);
  }
  return expectSubscription(await ledger.endSubscription(accountId, when), accountId);
}
