/**
 * Billing-period arithmetic, in UTC, on milliseconds since the epoch: the TypeScript twin of
 * src/ledger/lua/includes/period.lua (written separately; test/ledger/period.test.ts checks they agree).
 *
 * A period starts on the anchor's day of the month (`month`) or on the anchor's month and day (`year`), at the
 * anchor's time of day. An anchor day past the end of a shorter month clamps to that month's last day and comes
 * back (Jan 31 → Feb 28/29 → Mar 31; a Feb 29 yearly anchor → Feb 28 in common years → Feb 29 again).
 */

export type Cadence = "month" | "year";

export interface Period {
  /** The period's first millisecond. */
  readonly startMs: number;
  /** The next period's start: the next reset (exclusive). */
  readonly endMs: number;
  /** The period number: 0 starts at the anchor. */
  readonly index: number;
}

const DAY_MS = 86_400_000;

function monthsPerPeriod(cadence: Cadence): number {
  if (cadence === "month") return 1;
  if (cadence === "year") return 12;
  throw new RangeError(`unknown cadence: ${String(cadence)}`);
}

/** The range a Date can hold (±100,000,000 days from the epoch). */
const MAX_MS = 8.64e15;

function checkInteger(name: string, n: number, limit = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isSafeInteger(n) || Math.abs(n) > limit) throw new RangeError(`${name} out of range: ${n}`);
}

function daysInMonth(year: number, month0: number): number {
  if (month0 === 1) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month0 === 3 || month0 === 5 || month0 === 8 || month0 === 10 ? 30 : 31;
}

/** Months since year 0 of the UTC month holding ms. */
function monthIndex(ms: number): number {
  const date = new Date(ms);
  return date.getUTCFullYear() * 12 + date.getUTCMonth();
}

/** The start of period number `k` (0 is the anchor itself; negative k counts back). */
export function periodStartAt(anchorMs: number, cadence: Cadence, k: number): number {
  checkInteger("anchorMs", anchorMs, MAX_MS);
  checkInteger("k", k);
  const anchor = new Date(anchorMs);
  const timeOfDay = anchorMs - Math.floor(anchorMs / DAY_MS) * DAY_MS;
  const target = monthIndex(anchorMs) + k * monthsPerPeriod(cadence);
  const year = Math.floor(target / 12);
  const month0 = target - year * 12;
  const day = Math.min(anchor.getUTCDate(), daysInMonth(year, month0));
  const midnight = new Date(0);
  midnight.setUTCFullYear(year, month0, day); // a valid date: no overflow; unlike Date.UTC, years 0-99 stay put
  const startMs = midnight.getTime() + timeOfDay;
  if (!Number.isFinite(startMs)) throw new RangeError(`period ${k} of ${anchorMs} is out of range`);
  return startMs;
}

/**
 * The period holding `nowMs` (startMs ≤ nowMs < endMs: a now exactly at an end is in the next period), found from
 * the month difference and at most one step back, however many periods were missed.
 */
export function periodContaining(anchorMs: number, cadence: Cadence, nowMs: number): Period {
  checkInteger("nowMs", nowMs, MAX_MS);
  let index = Math.floor((monthIndex(nowMs) - monthIndex(anchorMs)) / monthsPerPeriod(cadence));
  let startMs = periodStartAt(anchorMs, cadence, index);
  let endMs = periodStartAt(anchorMs, cadence, index + 1);
  if (startMs > nowMs) {
    index -= 1;
    endMs = startMs;
    startMs = periodStartAt(anchorMs, cadence, index);
  }
  return { startMs, endMs, index };
}
