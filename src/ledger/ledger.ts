import type { Cluster, Redis } from "ioredis";
import type { RedisClient } from "../redis/connect.js";
import { type Clock, redisClock } from "./clock.js";
import { KeySpace } from "./keys.js";
import { type LuaLibrary, keyCount, loadLibrary } from "./script-loader.js";
import { BUCKET_KINDS, type BucketKindName, ScriptStatus } from "./status.js";

/** Credits taken from (or given back to) one bucket. */
export interface Draw {
  bucketId: string;
  amountMicros: number;
}

export interface BucketState {
  bucketId: string;
  kind: BucketKindName;
  remainingMicros: number;
  grantedMicros: number;
  priority: number;
  /** 0 when the bucket never expires. */
  expiresAtMs: number;
  createdAtMs: number;
  grantId: string;
}

export type ReserveResult =
  | {
      status: "held" | "replayed";
      reservationId: string;
      heldMicros: number;
      availableMicros: number;
      expiresAtMs: number;
      heldFrom: Draw[];
      /** Low-credit warnings this hold crossed ("20", "5", "depleted"); empty on a replay. */
      warnings: string[];
    }
  | { status: "insufficient"; availableMicros: number; requiredMicros: number }
  /** The workspace member would pass the per-member cap of this period. */
  | { status: "member_cap"; capMicros: number; usedMicros: number; heldMicros: number }
  /** The request id was used before for a different request (another amount, or another priced request). */
  | { status: "amount_conflict"; firstAmountMicros: number }
  | { status: "request_id_taken"; otherAccountId: string };

export type SettleResult =
  | {
      status: "settled" | "replayed";
      chargedMicros: number;
      releasedMicros: number;
      availableMicros: number;
      holdExpired: boolean;
      uncoveredMicros: number;
      chargedFrom: Draw[];
      /** The receipt the first Settle stored ('' when it charged an explicit amount). */
      receipt: string;
      /** Low-credit warnings this Settle crossed; empty on a replay. */
      warnings: string[];
    }
  | { status: "not_found" }
  | { status: "charge_conflict"; firstChargeMicros: number }
  | { status: "refunded" };

export type RefundResult =
  | {
      status: "refunded" | "replayed";
      refundedMicros: number;
      availableMicros: number;
      expiredMicros: number;
      /** "expired" when the hold had already run out: nothing was left to give back. */
      state: "refunded" | "expired";
    }
  | { status: "not_found" };

export interface GrantInput {
  accountId: string;
  grantId: string;
  amountMicros: number;
  kind: BucketKindName;
  /** 0 takes the kind's default. */
  priority: number;
  /** 0 = never. */
  expiresAtMs: number;
}

export type GrantResult =
  | { status: "granted" | "replayed"; bucket: BucketState; availableMicros: number }
  | {
      status: "grant_conflict";
      first: { amountMicros: number; kind: string; priority: number; expiresAtMs: number };
    }
  | { status: "expires_in_past"; nowMs: number }
  | { status: "overflow"; headroomMicros: number };

export interface Balance {
  accountId: string;
  availableMicros: number;
  heldMicros: number;
  grantedMicros: number;
  chargedMicros: number;
  expiredMicros: number;
  nowMs: number;
  /** Live buckets in draw order. */
  buckets: BucketState[];
  /** The subscription's current period; null when the account has no subscription. */
  period: PeriodSummary | null;
  /** One member's usage, when asked for. */
  member: MemberUsage | null;
}

export interface PeriodSummary {
  plan: string;
  status: SubscriptionStatus;
  /** 0 when there is no current period (an ended subscription). */
  startMs: number;
  endMs: number;
  /** Charged in this period (net of refunds). */
  usedMicros: number;
  /** This period's allowance as granted (an unlimited plan's grows with use), add-on and trial credits. */
  allowanceMicros: number;
  addonMicros: number;
  trialMicros: number;
  unlimited: boolean;
}

export interface MemberUsage {
  memberId: string;
  heldMicros: number;
  /** Charged by the member in this period. */
  usedMicros: number;
  /** 0 = no cap. */
  capMicros: number;
}

export type SubscriptionStatus = "active" | "trialing" | "past_due" | "ended";

/** The terms SetSubscription copies into the account (resolved from the catalog's plan by the service). */
export interface SubscriptionTerms {
  planId: string;
  period: "month" | "year";
  /** Undefined: the seats in force (1 for a new subscription). */
  seats: number | undefined;
  creditsMicros: number;
  creditsPerSeatMicros: number;
  unlimited: boolean;
  memberCapMicros: number;
  addons: Array<{ id: string; units: number; creditsPerUnitMicros: number; perSeat: boolean }>;
  status: "active" | "trialing" | "past_due";
  /** Undefined: keep the current anchor (or now, for a new subscription; the trial's end when trialing). */
  anchorMs: number | undefined;
  trialCreditsMicros: number;
  trialMs: number;
  /** Low-credit warnings: percentages of the period's credits (empty: only depleted). */
  warnAtPercent: number[];
}

export interface SubscriptionAddonState {
  id: string;
  /** Units in force this period. */
  units: number;
  /** Units the next period renews with (0 = cancelled: ends with this period). */
  nextUnits: number;
  creditsPerUnitMicros: number;
  perSeat: boolean;
}

export interface SubscriptionView {
  accountId: string;
  planId: string;
  status: SubscriptionStatus;
  period: "month" | "year";
  anchorMs: number;
  seats: number;
  creditsMicros: number;
  creditsPerSeatMicros: number;
  unlimited: boolean;
  memberCapMicros: number;
  warnAtPercent: number[];
  addons: SubscriptionAddonState[];
  startedAtMs: number;
  endedAtMs: number | null;
  trialEndsAtMs: number | null;
  /** The current period (null once ended). */
  currentPeriod: { startMs: number; endMs: number; usedMicros: number } | null;
  /** This period's credits from the subscription: granted and left. */
  allowance: { grantedMicros: number; remainingMicros: number };
  addonCredits: { grantedMicros: number; remainingMicros: number };
  trialCredits: { grantedMicros: number; remainingMicros: number };
  /** What the next period changes (a downgrade, fewer seats), or null. */
  scheduled: {
    planId: string | null;
    seats: number | null;
    creditsMicros: number | null;
    creditsPerSeatMicros: number | null;
    unlimited: boolean | null;
    endsAtPeriodEnd: boolean;
    scheduledAtMs: number | null;
  } | null;
  nowMs: number;
}

export type SubscriptionOutcome =
  | "started" | "activated" | "restarted" | "changed" | "scheduled" | "updated" | "unchanged"
  | "addon_cancelled" | "ended" | "end_scheduled" | "get";

export type SubscriptionResult =
  | { status: "ok"; outcome: SubscriptionOutcome; subscription: SubscriptionView }
  | { status: "not_found" }
  | { status: "refused"; field: string; message: string };

export type ReservationStateName = "held" | "settled" | "refunded" | "expired";

export interface ReservationView {
  reservationId: string;
  accountId: string;
  requestId: string;
  state: ReservationStateName;
  heldMicros: number;
  chargedMicros: number;
  releasedMicros: number;
  refundedMicros: number;
  uncoveredMicros: number;
  createdAtMs: number;
  expiresAtMs: number;
  settledAtMs: number | null;
  refundedAtMs: number | null;
  holdExpired: boolean;
  heldFrom: Draw[];
  chargedFrom: Draw[];
  refundReason: string;
  /** Set when the hold was priced from the catalog: what Settle prices real usage with. */
  pricing: { context: string; catalogVersion: string } | null;
  receipt: string;
}

export interface AuditReport {
  accountId: string;
  ok: boolean;
  problems: string[];
  grantedMicros: number;
  availableMicros: number;
  heldMicros: number;
  chargedMicros: number;
  expiredMicros: number;
}

export interface LedgerOptions {
  keyPrefix: string;
  /** How long finished reservations, request ids and grant ids are kept for replays. */
  retentionMs: number;
  /** Approximate cap of each account's ledger stream; 0 = no cap. */
  ledgerMaxEntries: number;
  /**
   * Ledger entries older than this are trimmed (approximately) when Reserve, Settle or Refund write to the
   * account; default 0 = kept until the size cap.
   */
  ledgerRetentionMs?: number;
  /** Days of usage aggregates kept per account (GetUsageSummary); default 400, 0 = every day. */
  usageSummaryDays?: number;
  clock?: Clock;
}

/** The usage of a priced generation: what the proxy named at Reserve, what was charged at Settle. */
export interface UsageNames {
  operation: string;
  model: string;
}

const SCRIPTS = [
  "reserve-8", "settle-8", "refund-8", "grant-7", "balance-6", "reservation-2", "audit-2", "subscription-6",
] as const;
type ScriptName = (typeof SCRIPTS)[number];
type ScriptFn = (...args: Array<string | number>) => Promise<unknown>;

const LUA_DIR = new URL("./lua/", import.meta.url);

/** CREDITD_USAGE_SUMMARY_DAYS's default. */
export const DEFAULT_USAGE_SUMMARY_DAYS = 400;

/** A reservation id is the account id and the request id: the account's hash tag is known without a lookup. */
export function reservationIdOf(accountId: string, requestId: string): string {
  return `${accountId}:${requestId}`;
}

export function parseReservationId(reservationId: string): { accountId: string; requestId: string } | null {
  const i = reservationId.indexOf(":");
  if (i <= 0) return null;
  return { accountId: reservationId.slice(0, i), requestId: reservationId.slice(i + 1) };
}

/**
 * The ledger engine: one typed wrapper per Lua script. Every change to an account is one script on one hash slot
 * that writes its ledger entry itself; this class only builds keys and arguments and reads replies.
 * Callers validate input first (see service/validate.ts): the scripts trust their arguments.
 */
export class Ledger {
  readonly keys: KeySpace;
  private readonly clock: Clock;
  private readonly scripts: Record<ScriptName, ScriptFn>;
  private readonly library: LuaLibrary;
  private loading: Promise<void> | undefined;

  constructor(
    readonly redis: RedisClient,
    private readonly options: LedgerOptions,
  ) {
    this.keys = new KeySpace(options.keyPrefix);
    this.clock = options.clock ?? redisClock;
    // Redis Functions rather than EVALSHA: the helpers of includes/ are defined once when the library loads, not
    // re-created by every call (bench/README.md has the measurement).
    this.library = loadLibrary(LUA_DIR, SCRIPTS);
    const scripts = {} as Record<ScriptName, ScriptFn>;
    for (const name of SCRIPTS) {
      const numKeys = keyCount(name);
      scripts[name] = (...args) => this.fcall(name, numKeys, args);
    }
    this.scripts = scripts;
  }

  /** Calls a script's function with the first numKeys of args as its KEYS. */
  private async fcall(name: ScriptName, numKeys: number, args: Array<string | number>): Promise<unknown> {
    const fn = this.library.functionOf[name]!;
    try {
      return await this.redis.fcall(fn, numKeys, ...args);
    } catch (err) {
      // A restarted, flushed or new (Cluster) node does not have the library yet: load it and try once more.
      if (!(err instanceof Error) || !err.message.includes("Function not found")) throw err;
      await this.loadScripts();
      return await this.redis.fcall(fn, numKeys, ...args);
    }
  }

  /** The Redis Functions library holding the scripts (`creditd_<hash of the code>`). */
  get libraryName(): string {
    return this.library.name;
  }

  /**
   * Loads the scripts' library into every master (FUNCTION LOAD REPLACE), so health can say the ledger is ready.
   * Calls that meet a node without it come here too; concurrent ones share one load.
   */
  loadScripts(): Promise<void> {
    this.loading ??= (async () => {
      try {
        const nodes: Redis[] = isCluster(this.redis) ? this.redis.nodes("master") : [this.redis];
        await Promise.all(nodes.map((node) => node.call("FUNCTION", "LOAD", "REPLACE", this.library.code)));
      } finally {
        this.loading = undefined;
      }
    })();
    return this.loading;
  }

  private now(): string {
    const ms = this.clock.nowMs();
    return ms === undefined ? "" : String(ms);
  }

  private get retention(): number {
    return this.options.retentionMs;
  }

  private get maxLen(): number {
    return this.options.ledgerMaxEntries;
  }

  private get ledgerRetention(): number {
    return this.options.ledgerRetentionMs ?? 0;
  }

  private get summaryDays(): number {
    return this.options.usageSummaryDays ?? DEFAULT_USAGE_SUMMARY_DAYS;
  }

  /** The time the scripts use: the injected clock's, else this process's (Redis's clock is not read here). */
  nowMs(): number {
    return this.clock.nowMs() ?? Date.now();
  }

  async reserve(input: {
    accountId: string;
    requestId: string;
    amountMicros: number;
    ttlMs: number;
    /** What makes a repeat the same request; default: the amount. A priced request passes a hash of itself. */
    fingerprint?: string;
    /** What Settle needs to price real usage (counts, never text), kept with the hold. */
    pricing?: { context: string; catalogVersion: string };
    /** The workspace member the generation is for: counted against the per-member cap. */
    memberId?: string;
    /** A priced request's operation and model, kept for the usage records of its Settle and Refund. */
    usage?: UsageNames;
  }): Promise<ReserveResult> {
    const { accountId, requestId, amountMicros, ttlMs } = input;
    // A request id belongs to one account. Its claim lives in the request id's own slot: on one Redis the script
    // checks and makes it in the same call (one round trip); on Cluster it is a command of its own, before the
    // account's script decides replay, conflict or hold atomically.
    const claimKey = this.keys.requestClaim(requestId);
    let claimed: string | null = null;
    const cluster = isCluster(this.redis);
    if (cluster) {
      claimed = (await this.redis.set(claimKey, accountId, "PX", ttlMs + this.retention, "NX", "GET")) as string | null;
      if (claimed !== null && claimed !== accountId) {
        return { status: "request_id_taken", otherAccountId: claimed };
      }
    }
    const k = this.keys.account(accountId);
    const args = [
      this.now(), accountId, requestId, amountMicros, ttlMs, this.retention, this.maxLen,
      input.fingerprint ?? String(amountMicros), input.pricing?.context ?? "", input.pricing?.catalogVersion ?? "",
      input.memberId ?? "", input.usage?.operation ?? "", input.usage?.model ?? "", this.ledgerRetention,
    ];
    const keys = [k.acct, k.holds, k.ledger, k.reservation(requestId), k.sweep, k.members, k.events];
    if (!cluster) keys.push(claimKey);
    const reply = (await this.fcall("reserve-8", keys.length, [...keys, ...args])) as [number, ...unknown[]];
    if (reply[0] === ScriptStatus.RequestIdTaken) {
      return { status: "request_id_taken", otherAccountId: String(reply[1]) };
    }
    const code = reply[0];
    if (code === ScriptStatus.Ok || code === ScriptStatus.Replayed) {
      const [, held, avail, deadline, draws, warnings] = reply as [number, string, string, string, string, string?];
      return {
        status: code === ScriptStatus.Ok ? "held" : "replayed",
        reservationId: reservationIdOf(accountId, requestId),
        heldMicros: Number(held),
        availableMicros: Number(avail),
        expiresAtMs: Number(deadline),
        heldFrom: parseDraws(draws),
        warnings: warnings ? warnings.split(",") : [],
      };
    }
    if (code === ScriptStatus.Insufficient || code === ScriptStatus.MemberCap) {
      // A refusal changes nothing, so a claim this call made goes too. (Were the same request id racing in from
      // a retry that succeeds meanwhile, its reservation would only lose the cross-account check, not its record.)
      if (cluster && claimed === null) await this.redis.del(claimKey);
      if (code === ScriptStatus.MemberCap) {
        return {
          status: "member_cap",
          capMicros: Number(reply[1]),
          usedMicros: Number(reply[2]),
          heldMicros: Number(reply[3]),
        };
      }
      return { status: "insufficient", availableMicros: Number(reply[1]), requiredMicros: Number(reply[2]) };
    }
    if (code === ScriptStatus.Conflict) {
      return { status: "amount_conflict", firstAmountMicros: Number(reply[1]) };
    }
    throw unexpected("reserve", reply);
  }

  /**
   * `receipt` (how the charge was priced) is kept with the reservation and in the ledger entry; `quantities` (what
   * was charged for, encoded by src/usage/quantities.ts) goes into the ledger entry and the usage aggregates.
   */
  async settle(
    reservation: { accountId: string; requestId: string },
    chargeMicros: number,
    receipt = "",
    quantities = "",
  ): Promise<SettleResult> {
    const k = this.keys.account(reservation.accountId);
    const reply = (await this.scripts["settle-8"](
      k.acct, k.holds, k.ledger, k.reservation(reservation.requestId), k.sweep, k.members, k.events, k.usage,
      this.now(), reservation.accountId, reservation.requestId, chargeMicros, this.retention, this.maxLen, receipt,
      quantities, this.summaryDays, this.ledgerRetention,
    )) as [number, ...unknown[]];
    const code = reply[0];
    if (code === ScriptStatus.Ok || code === ScriptStatus.Replayed) {
      const [, charged, released, avail, expired, uncovered, draws, storedReceipt, warnings] = reply as [
        number,
        ...string[],
      ];
      return {
        status: code === ScriptStatus.Ok ? "settled" : "replayed",
        chargedMicros: Number(charged),
        releasedMicros: Number(released),
        availableMicros: Number(avail),
        holdExpired: expired === "1",
        uncoveredMicros: Number(uncovered),
        chargedFrom: parseDraws(draws ?? ""),
        receipt: storedReceipt ?? "",
        warnings: warnings ? warnings.split(",") : [],
      };
    }
    if (code === ScriptStatus.NotFound) return { status: "not_found" };
    if (code === ScriptStatus.SettledWithOtherCharge) {
      return { status: "charge_conflict", firstChargeMicros: Number(reply[1]) };
    }
    if (code === ScriptStatus.AlreadyRefunded) return { status: "refunded" };
    throw unexpected("settle", reply);
  }

  async refund(reservation: { accountId: string; requestId: string }, reason: string): Promise<RefundResult> {
    const k = this.keys.account(reservation.accountId);
    const reply = (await this.scripts["refund-8"](
      k.acct, k.holds, k.ledger, k.reservation(reservation.requestId), k.sweep, k.members, k.events, k.usage,
      this.now(), reservation.accountId, reservation.requestId, reason, this.retention, this.maxLen,
      this.summaryDays, this.ledgerRetention,
    )) as [number, ...unknown[]];
    const code = reply[0];
    if (code === ScriptStatus.Ok || code === ScriptStatus.Replayed) {
      const [, refunded, avail, toExpired, state] = reply as [number, ...string[]];
      return {
        status: code === ScriptStatus.Ok ? "refunded" : "replayed",
        refundedMicros: Number(refunded),
        availableMicros: Number(avail),
        expiredMicros: Number(toExpired),
        state: state === "x" ? "expired" : "refunded",
      };
    }
    if (code === ScriptStatus.NotFound) return { status: "not_found" };
    throw unexpected("refund", reply);
  }

  async grant(input: GrantInput): Promise<GrantResult> {
    const { accountId, grantId, amountMicros, kind, expiresAtMs } = input;
    const priority = input.priority || BUCKET_KINDS[kind].defaultPriority;
    const k = this.keys.account(accountId);
    const reply = (await this.scripts["grant-7"](
      k.acct, k.holds, k.ledger, k.grant(grantId), k.sweep, k.members, k.events,
      this.now(), accountId, grantId, amountMicros, kind, priority, expiresAtMs, this.retention, this.maxLen,
    )) as [number, ...unknown[]];
    const code = reply[0];
    if (code === ScriptStatus.Ok || code === ScriptStatus.Replayed) {
      const [, n, created, avail] = reply as [number, string, string, string];
      return {
        status: code === ScriptStatus.Ok ? "granted" : "replayed",
        bucket: {
          bucketId: `b${n}`,
          kind,
          remainingMicros: amountMicros,
          grantedMicros: amountMicros,
          priority,
          expiresAtMs,
          createdAtMs: Number(created),
          grantId,
        },
        availableMicros: Number(avail),
      };
    }
    if (code === ScriptStatus.Conflict) {
      const [, amount, firstKind, firstPriority, firstExpiry] = reply as [number, ...string[]];
      return {
        status: "grant_conflict",
        first: {
          amountMicros: Number(amount),
          kind: String(firstKind),
          priority: Number(firstPriority),
          expiresAtMs: Number(firstExpiry),
        },
      };
    }
    if (code === ScriptStatus.ExpiresInPast) return { status: "expires_in_past", nowMs: Number(reply[1]) };
    if (code === ScriptStatus.Overflow) return { status: "overflow", headroomMicros: Number(reply[1]) };
    throw unexpected("grant", reply);
  }

  /**
   * Touches the account (expired buckets and holds are settled, the period rolls forward if due) and returns its
   * balance, with one member's usage when `memberId` is given.
   */
  async balance(accountId: string, memberId = ""): Promise<Balance> {
    const k = this.keys.account(accountId);
    const reply = (await this.scripts["balance-6"](
      k.acct, k.holds, k.ledger, k.sweep, k.members, k.events, this.now(), accountId, this.maxLen, memberId,
    )) as [number, string, string, string, string, string, string, string[], string[], string[]];
    const [, available, held, granted, charged, expired, now, flat, periodFlat, memberFlat] = reply;
    const p = flatMap(periodFlat);
    const m = flatMap(memberFlat);
    const buckets: BucketState[] = [];
    for (let i = 0; i < flat.length; i += 8) {
      buckets.push({
        bucketId: `b${flat[i]}`,
        kind: flat[i + 1] as BucketKindName,
        remainingMicros: Number(flat[i + 2]),
        grantedMicros: Number(flat[i + 3]),
        priority: Number(flat[i + 4]),
        expiresAtMs: Number(flat[i + 5]),
        createdAtMs: Number(flat[i + 6]),
        grantId: String(flat[i + 7]),
      });
    }
    return {
      accountId,
      availableMicros: Number(available),
      heldMicros: Number(held),
      grantedMicros: Number(granted),
      chargedMicros: Number(charged),
      expiredMicros: Number(expired),
      nowMs: Number(now),
      buckets,
      period: p.size === 0 ? null : {
        plan: p.get("plan") ?? "",
        status: (p.get("status") ?? "active") as SubscriptionStatus,
        startMs: Number(p.get("start") ?? 0),
        endMs: Number(p.get("end") ?? 0),
        usedMicros: Number(p.get("used") ?? 0),
        allowanceMicros: Number(p.get("allowance") ?? 0),
        addonMicros: Number(p.get("addons") ?? 0),
        trialMicros: Number(p.get("trial") ?? 0),
        unlimited: p.get("unlimited") === "1",
      },
      member: m.size === 0 ? null : {
        memberId,
        heldMicros: Number(m.get("held") ?? 0),
        usedMicros: Number(m.get("used") ?? 0),
        capMicros: Number(m.get("cap") ?? 0),
      },
    };
  }

  /** Touches the account (rolling its period forward if due) and returns its subscription, or null. */
  async subscription(accountId: string): Promise<SubscriptionView | null> {
    const r = await this.subscriptionScript(accountId, ["get"]);
    return r.status === "ok" ? r.subscription : null;
  }

  /** Starts or changes a subscription; idempotent (stating what is in force changes nothing). */
  async setSubscription(accountId: string, t: SubscriptionTerms): Promise<SubscriptionResult> {
    const addons = t.addons
      .filter((a) => a.units > 0)
      .map((a) => `${a.id},${a.units},${a.creditsPerUnitMicros},${a.perSeat ? 1 : 0},${a.units}`)
      .join(";");
    return this.subscriptionScript(accountId, [
      "set", t.planId, t.period, t.seats ?? "", t.creditsMicros, t.creditsPerSeatMicros, t.unlimited ? "1" : "0",
      t.memberCapMicros, addons, t.status, t.anchorMs === undefined ? "" : t.anchorMs, t.trialCreditsMicros,
      t.trialMs, t.warnAtPercent.join(","),
    ]);
  }

  /** The add-on keeps its credits to the end of the period, then does not renew. */
  async cancelAddon(accountId: string, addonId: string): Promise<SubscriptionResult> {
    return this.subscriptionScript(accountId, ["cancel_addon", addonId]);
  }

  /** Ends the subscription now, or schedules its end at the end of the period. */
  async endSubscription(accountId: string, when: "now" | "period_end"): Promise<SubscriptionResult> {
    return this.subscriptionScript(accountId, ["end", when]);
  }

  private async subscriptionScript(accountId: string, args: Array<string | number>): Promise<SubscriptionResult> {
    const k = this.keys.account(accountId);
    const reply = (await this.scripts["subscription-6"](
      k.acct, k.holds, k.ledger, k.sweep, k.members, k.events, this.now(), accountId, this.maxLen, ...args,
    )) as [number, ...unknown[]];
    const code = reply[0];
    if (code === ScriptStatus.Ok || code === ScriptStatus.Replayed) {
      return {
        status: "ok",
        outcome: reply[1] as SubscriptionOutcome,
        subscription: subscriptionView(accountId, flatMap(reply[2] as string[])),
      };
    }
    if (code === ScriptStatus.NotFound) return { status: "not_found" };
    if (code === ScriptStatus.BadTransition) {
      return { status: "refused", field: String(reply[1]), message: String(reply[2]) };
    }
    throw unexpected("subscription", reply);
  }

  async reservation(accountId: string, requestId: string): Promise<ReservationView | null> {
    const k = this.keys.account(accountId);
    const reply = (await this.scripts["reservation-2"](
      k.reservation(requestId), k.holds, this.now(), requestId,
    )) as [number, string[], string, string];
    if (reply[0] === ScriptStatus.NotFound) return null;
    const [, flat, liveScore, nowStr] = reply;
    const liveDeadline = Number(liveScore);
    const now = Number(nowStr);
    const f = new Map<string, string>();
    for (let i = 0; i < flat.length; i += 2) f.set(flat[i] as string, flat[i + 1] as string);
    const num = (name: string): number => Number(f.get(name) ?? 0);
    const recorded = f.get("st");
    const expiresAtMs = num("exp");
    let state: ReservationStateName;
    if (recorded === "s") state = "settled";
    else if (recorded === "r") state = "refunded";
    else if (recorded === "x") state = "expired";
    // Held on record, but its deadline has passed (released, or about to be on the next touch).
    else state = liveDeadline < 0 || expiresAtMs <= now ? "expired" : "held";
    return {
      reservationId: reservationIdOf(accountId, requestId),
      accountId,
      requestId,
      state,
      heldMicros: num("amt"),
      chargedMicros: num("ch"),
      releasedMicros: num("rel"),
      refundedMicros: num("rf"),
      uncoveredMicros: num("unc"),
      createdAtMs: num("t"),
      expiresAtMs,
      settledAtMs: f.has("st_t") ? num("st_t") : null,
      refundedAtMs: f.has("rf_t") ? num("rf_t") : null,
      holdExpired: f.get("hx") === "1",
      heldFrom: parseDraws(f.get("d") ?? ""),
      chargedFrom: parseDraws(f.get("cd") ?? ""),
      refundReason: f.get("rr") ?? "",
      pricing: f.has("pc") ? { context: f.get("pc") ?? "", catalogVersion: f.get("cv") ?? "" } : null,
      receipt: f.get("rc") ?? "",
    };
  }

  /** Checks DESIGN.md's invariant for one account from an atomic snapshot. */
  async audit(accountId: string): Promise<AuditReport> {
    const k = this.keys.account(accountId);
    const [granted, held, charged, expired, bucketSum, holdSum, , violations] = (
      (await this.scripts["audit-2"](k.acct, k.holds)) as string[]
    ).map(Number) as [number, number, number, number, number, number, number, number];
    const problems: string[] = [];
    if (granted !== bucketSum + held + charged + expired) {
      problems.push(
        `granted ${granted} != available ${bucketSum} + held ${held} + charged ${charged} + expired ${expired}` +
          ` (off by ${granted - (bucketSum + held + charged + expired)})`,
      );
    }
    if (held !== holdSum) problems.push(`held total ${held} != sum of live holds ${holdSum}`);
    if (violations > 0) problems.push(`${violations} negative or overfull amounts`);
    return {
      accountId,
      ok: problems.length === 0,
      problems,
      grantedMicros: granted,
      availableMicros: bucketSum,
      heldMicros: held,
      chargedMicros: charged,
      expiredMicros: expired,
    };
  }

  /** Every account id with an account hash, walking every master with SCAN (an operator's tool, not a hot path). */
  async *accountIds(): AsyncGenerator<string> {
    const nodes: Redis[] = isCluster(this.redis) ? this.redis.nodes("master") : [this.redis];
    for (const node of nodes) {
      let cursor = "0";
      do {
        const [next, keys] = await node.scan(cursor, "MATCH", this.keys.accountPattern(), "COUNT", 1000);
        cursor = next;
        for (const key of keys) {
          const id = this.keys.accountIdOfKey(key);
          if (id !== null) yield id;
        }
      } while (cursor !== "0");
    }
  }

}

export function isCluster(client: RedisClient): client is Cluster {
  return (client as Cluster).isCluster === true;
}

function flatMap(flat: string[] | undefined): Map<string, string> {
  const m = new Map<string, string>();
  if (!flat) return m;
  for (let i = 0; i + 1 < flat.length; i += 2) m.set(String(flat[i]), String(flat[i + 1]));
  return m;
}

function subscriptionView(accountId: string, v: Map<string, string>): SubscriptionView {
  const num = (k: string): number => Number(v.get(k) ?? 0);
  const opt = (k: string): number | null => (v.has(k) ? Number(v.get(k)) : null);
  const addons: SubscriptionAddonState[] = [];
  for (const entry of (v.get("s.ad") ?? "").split(";")) {
    const [id, units, cpu, perSeat, next] = entry.split(",");
    if (!id) continue;
    addons.push({
      id,
      units: Number(units),
      nextUnits: Number(next),
      creditsPerUnitMicros: Number(cpu),
      perSeat: perSeat === "1",
    });
  }
  const hasPeriod = v.has("p.s") && v.has("p.e");
  const scheduledTerms = ["n.plan", "n.seats", "n.cr", "n.cps", "n.unl"].some((k) => v.has(k));
  const endsAtPeriodEnd = v.get("n.end") === "1";
  return {
    accountId,
    planId: v.get("s.plan") ?? "",
    status: (v.get("s.st") ?? "ended") as SubscriptionStatus,
    period: (v.get("s.cad") ?? "month") as "month" | "year",
    anchorMs: num("s.anc"),
    seats: num("s.seats"),
    creditsMicros: num("s.cr"),
    creditsPerSeatMicros: num("s.cps"),
    unlimited: v.get("s.unl") === "1",
    memberCapMicros: num("s.cap"),
    warnAtPercent: (v.get("s.warn") ?? "20,5").split(",").filter((x) => x !== "").map(Number),
    addons,
    startedAtMs: num("s.since"),
    endedAtMs: opt("s.ended"),
    trialEndsAtMs: opt("s.tend"),
    currentPeriod: hasPeriod ? { startMs: num("p.s"), endMs: num("p.e"), usedMicros: num("p.u") } : null,
    allowance: { grantedMicros: num("allowance.g"), remainingMicros: num("allowance.r") },
    addonCredits: { grantedMicros: num("addon.g"), remainingMicros: num("addon.r") },
    trialCredits: { grantedMicros: num("trial.g"), remainingMicros: num("trial.r") },
    scheduled: scheduledTerms || endsAtPeriodEnd ? {
      planId: v.get("n.plan") ?? null,
      seats: opt("n.seats"),
      creditsMicros: opt("n.cr"),
      creditsPerSeatMicros: opt("n.cps"),
      unlimited: v.has("n.unl") ? v.get("n.unl") === "1" : null,
      endsAtPeriodEnd,
      scheduledAtMs: opt("n.at"),
    } : null,
    nowMs: num("now"),
  };
}

function parseDraws(s: string): Draw[] {
  if (!s) return [];
  return s.split(",").map((part) => {
    const [n, amount] = part.split(":");
    return { bucketId: `b${n}`, amountMicros: Number(amount) };
  });
}

function unexpected(script: string, reply: unknown): Error {
  return new Error(`unexpected reply from ${script} script: ${JSON.stringify(reply)}`);
}
