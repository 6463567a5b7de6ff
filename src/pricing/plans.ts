// Plans: what a workspace's subscription gives it each period. The catalog file's optional `plans:`
// section (parsed and validated in catalog.ts, whose header documents the format) becomes
// Catalog.plans / Catalog.planAliases; this module holds the types and the arithmetic on them.
//
// Amounts are plain `number` micro-credits (1 credit = 1,000,000), not bigint: they are handed to Redis
// Lua as integers, and Lua keeps numbers as doubles. The catalog refuses any plan whose largest possible
// period — credits + credits_per_seat × MAX_SEATS + every add-on at its max_units (× MAX_SEATS when
// per seat) — would pass Number.MAX_SAFE_INTEGER micros, so every sum below is exact.

import type { Catalog } from "./catalog.js";
import { formatCredits } from "./decimal.js";

/** Most seats a workspace may have; the arithmetic below refuses more (it bounds every plan amount). */
export const MAX_SEATS = 100_000;
/** Default and largest `max_units` of an add-on. */
export const DEFAULT_ADDON_MAX_UNITS = 10_000;
export const MAX_ADDON_UNITS = 1_000_000;
/** Largest single amount of a plan (credits, credits_per_seat, member_cap, trial and add-on credits), in credits. */
export const MAX_PLAN_CREDITS = 1_000_000_000;
/** Longest trial, in days. */
export const MAX_TRIAL_DAYS = 365;
/** Plan, alias and add-on ids: like operation names, 1-128 characters of A-Z a-z 0-9 . _ : / @ + -, starting with a letter or digit. */
export const PLAN_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$/;

/** How often a plan's allowance refills (`year`: the year's credits upfront), or how it is billed. */
export type PlanCadence = "month" | "year";

export interface PlanAddon {
  readonly id: string;
  /** Display name (default: the id). */
  readonly name: string;
  /** Credits one unit gives per period (> 0), in micros. */
  readonly creditsPerUnitMicros: number;
  /** True: each unit gives creditsPerUnit × seats; false: shared by the workspace. */
  readonly perSeat: boolean;
  /** Most units a workspace may hold. */
  readonly maxUnits: number;
}

export interface PlanTrial {
  readonly creditsMicros: number;
  readonly days: number;
}

export interface Plan {
  readonly id: string;
  /** Display name (default: the id). */
  readonly name: string;
  /** How often the allowance refills; `year` grants the year's credits upfront. */
  readonly period: PlanCadence;
  /** How the plan is billed (informational; defaults to the period). */
  readonly billing: PlanCadence;
  /** Credits per period for the workspace, in micros. */
  readonly creditsMicros: number;
  /** Credits per seat per period, in micros. */
  readonly creditsPerSeatMicros: number;
  /** Never refuses for credits (credits and creditsPerSeat are then 0, and there are no add-ons). */
  readonly unlimited: boolean;
  /** Kept for existing customers. */
  readonly legacy: boolean;
  /** Other ids that resolve to this plan (Catalog.planAliases maps them back). */
  readonly aliases: readonly string[];
  /** Default per-member cap per period, in micros; undefined = no cap. */
  readonly memberCapMicros: number | undefined;
  readonly trial: PlanTrial | undefined;
  readonly addons: ReadonlyMap<string, PlanAddon>;
  /** Low-credit warnings: percentages of the period's credits, highest first (each fires once per period). */
  readonly warnAtPercent: readonly number[];
}

/** Warnings when a plan sets none: at 20 % and 5 % of the period's credits left (and when depleted). */
export const DEFAULT_WARN_AT_PERCENT: readonly number[] = [20, 5];

/** Finds a plan by id or alias; undefined when unknown. Ids are case-sensitive. */
export function resolvePlan(catalog: Pick<Catalog, "plans" | "planAliases">, id: string): Plan | undefined {
  const exact = catalog.plans.get(id);
  if (exact) return exact;
  const target = catalog.planAliases.get(id);
  return target === undefined ? undefined : catalog.plans.get(target);
}

function checkCount(what: string, n: number, max: number): void {
  if (!Number.isSafeInteger(n) || n < 0 || n > max) throw new RangeError(`${what} must be an integer between 0 and ${max}, got ${n}`);
}

/**
 * The plan's allowance for one period at this many seats: credits + creditsPerSeat × seats, in micros
 * (0 for unlimited plans). Throws RangeError unless seats is an integer in 0..MAX_SEATS.
 */
export function planAllowanceMicros(plan: Plan, seats: number): number {
  checkCount("seats", seats, MAX_SEATS);
  if (plan.unlimited) return 0;
  return plan.creditsMicros + plan.creditsPerSeatMicros * seats;
}

/**
 * Credits one period of these add-on units gives at this many seats, in micros: units × creditsPerUnit,
 * × seats for a per-seat add-on. Throws RangeError unless units is an integer in 0..addon.maxUnits and
 * seats one in 0..MAX_SEATS.
 */
export function addonCreditsMicros(addon: PlanAddon, units: number, seats: number): number {
  checkCount("units", units, addon.maxUnits);
  checkCount("seats", seats, MAX_SEATS);
  return addon.creditsPerUnitMicros * units * (addon.perSeat ? seats : 1);
}

/**
 * The largest period a plan can give: its allowance at MAX_SEATS plus every add-on at its max_units and
 * MAX_SEATS, in micros, as a bigint (the catalog refuses plans where this passes Number.MAX_SAFE_INTEGER).
 */
export function planWorstCaseMicros(plan: Pick<Plan, "creditsMicros" | "creditsPerSeatMicros" | "addons">): bigint {
  let total = BigInt(plan.creditsMicros) + BigInt(plan.creditsPerSeatMicros) * BigInt(MAX_SEATS);
  for (const a of plan.addons.values()) {
    total += BigInt(a.creditsPerUnitMicros) * BigInt(a.maxUnits) * (a.perSeat ? BigInt(MAX_SEATS) : 1n);
  }
  return total;
}

export interface PlanAddonDescription {
  readonly id: string;
  readonly name: string;
  /** Credits per unit per period, as an exact decimal string. */
  readonly creditsPerUnit: string;
  readonly perSeat: boolean;
  readonly maxUnits: number;
}

export interface PlanDescription {
  readonly id: string;
  readonly name: string;
  readonly period: PlanCadence;
  readonly billing: PlanCadence;
  /** Credits as exact decimal strings ("40", "2.5"). */
  readonly credits: string;
  readonly creditsPerSeat: string;
  readonly unlimited: boolean;
  readonly legacy: boolean;
  readonly aliases: readonly string[];
  readonly memberCap: string | undefined;
  readonly trial: { readonly credits: string; readonly days: number } | undefined;
  readonly addons: readonly PlanAddonDescription[];
}

const credits = (micros: number): string => formatCredits(BigInt(micros));

/** A plain-object description of a plan for JSON and replies (credits as exact decimal strings). */
export function describePlan(plan: Plan): PlanDescription {
  return {
    id: plan.id,
    name: plan.name,
    period: plan.period,
    billing: plan.billing,
    credits: credits(plan.creditsMicros),
    creditsPerSeat: credits(plan.creditsPerSeatMicros),
    unlimited: plan.unlimited,
    legacy: plan.legacy,
    aliases: plan.aliases,
    memberCap: plan.memberCapMicros === undefined ? undefined : credits(plan.memberCapMicros),
    trial: plan.trial === undefined ? undefined : { credits: credits(plan.trial.creditsMicros), days: plan.trial.days },
    addons: [...plan.addons.values()].map((a) => ({
      id: a.id,
      name: a.name,
      creditsPerUnit: credits(a.creditsPerUnitMicros),
      perSeat: a.perSeat,
      maxUnits: a.maxUnits,
    })),
  };
}
