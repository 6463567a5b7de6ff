import calculateSlot from "cluster-key-slot";

/**
 * Every Redis key creditd uses is built here. Every key of an account carries the account's hash tag, so each
 * script runs on one hash slot and Redis Cluster can route it; scripts receive all their keys through KEYS.
 */

/** Account ids: a safe charset and length, so no id can break a key or its hash tag. */
export const ACCOUNT_ID_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;
/** Request and grant ids (idempotency keys): printable ASCII without spaces, braces or `|` (the hold separator). */
export const IDEMPOTENCY_KEY_PATTERN = /^[!-z~]{1,128}$/;
const SLOTS = 16384;

export class KeySpace {
  constructor(readonly prefix: string) {}

  account(accountId: string): AccountKeys {
    return new AccountKeys(this.prefix, accountId);
  }

  /** Claims a request id across all accounts: it lives in the request id's own slot, not the account's. */
  requestClaim(requestId: string): string {
    return `${this.prefix}:req:{${requestId}}`;
  }

  /** The sweep index of one hash slot: accounts with live holds, scored by their earliest deadline. */
  sweepIndexOfSlot(slot: number): string {
    return `${this.prefix}:sweep:{${slotTag(slot)}}`;
  }

  /** The events stream of one hash slot (threshold, depleted, period_reset, grant, refund, hold_expired). */
  eventsOfSlot(slot: number): string {
    return `${this.prefix}:events:{${slotTag(slot)}}`;
  }

  /** The pub/sub channel where scripts announce new events (the message is the events stream to read). */
  eventsChannel(): string {
    return `${this.prefix}:events`;
  }

  /** The pattern of account hashes, for tools that walk every account (audit). */
  accountPattern(): string {
    return `${this.prefix}:{*}:acct`;
  }

  accountIdOfKey(key: string): string | null {
    const head = `${this.prefix}:{`;
    if (!key.startsWith(head) || !key.endsWith("}:acct")) return null;
    return key.slice(head.length, -"}:acct".length);
  }
}

export class AccountKeys {
  readonly acct: string;
  readonly holds: string;
  readonly ledger: string;
  readonly sweep: string;
  /** Workspace members' usage (held now, charged this period), under the account's hash tag. */
  readonly members: string;
  /** The events stream of the account's slot (shared with the other accounts of that slot). */
  readonly events: string;
  /**
   * Usage aggregates per UTC day and per (operation, model) (see lua/includes/usage.lua): kept apart from the
   * ledger so its trimming leaves them, with their own retention.
   */
  readonly usage: string;
  private readonly base: string;

  constructor(prefix: string, readonly accountId: string) {
    this.base = `${prefix}:{${accountId}}`;
    this.acct = `${this.base}:acct`;
    this.holds = `${this.base}:holds`;
    this.ledger = `${this.base}:ledger`;
    this.members = `${this.base}:members`;
    this.usage = `${this.base}:usage`;
    const tag = slotTag(calculateSlot(accountId));
    this.sweep = `${prefix}:sweep:{${tag}}`;
    this.events = `${prefix}:events:{${tag}}`;
  }

  reservation(requestId: string): string {
    return `${this.base}:rsv:${requestId}`;
  }

  grant(grantId: string): string {
    return `${this.base}:grant:${grantId}`;
  }
}

let tags: string[] | undefined;

/**
 * A short string whose hash slot is `slot`. The sweep index of a slot is tagged with it, so a script can update
 * the index of its own account's slot; found once by trying short strings (about 170,000 CRC16s, a few ms).
 */
export function slotTag(slot: number): string {
  if (!tags) {
    const found: string[] = new Array<string>(SLOTS);
    let missing = SLOTS;
    for (let i = 0; missing > 0; i++) {
      const candidate = i.toString(36);
      const s = calculateSlot(candidate);
      if (found[s] === undefined) {
        found[s] = candidate;
        missing--;
      }
    }
    tags = found;
  }
  const tag = tags[slot];
  if (tag === undefined) throw new RangeError(`hash slot out of range: ${slot}`);
  return tag;
}

export { SLOTS };
