// Billing periods (issue 4): the TypeScript arithmetic against the dates, then the Lua twin
// (src/ledger/lua/includes/period.lua) against the TypeScript on a real Redis, for thousands of random cases.

import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type Cadence, periodContaining, periodStartAt } from "../../src/ledger/period.js";
import { loadScript } from "../../src/ledger/script-loader.js";
import { useTestRedis } from "../support/redis.js";

const env = useTestRedis();

const ms = (iso: string): number => {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) throw new Error(`bad date ${iso}`);
  return t;
};
const iso = (t: number): string => new Date(t).toISOString();

describe("period starts", () => {
  const cases: Array<{ name: string; anchor: string; cadence: Cadence; starts: string[] }> = [
    {
      name: "a Jan 31 anchor clamps to Feb 28 (2027), then comes back to Mar 31, Apr 30, May 31",
      anchor: "2027-01-31T10:00:00.000Z",
      cadence: "month",
      starts: ["2027-01-31T10:00:00.000Z", "2027-02-28T10:00:00.000Z", "2027-03-31T10:00:00.000Z",
        "2027-04-30T10:00:00.000Z", "2027-05-31T10:00:00.000Z"],
    },
    {
      name: "a Jan 31 anchor in a leap year goes to Feb 29 (2028), then Mar 31, Apr 30, May 31",
      anchor: "2028-01-31T10:00:00.000Z",
      cadence: "month",
      starts: ["2028-01-31T10:00:00.000Z", "2028-02-29T10:00:00.000Z", "2028-03-31T10:00:00.000Z",
        "2028-04-30T10:00:00.000Z", "2028-05-31T10:00:00.000Z"],
    },
    {
      name: "an anchor on the 5th resets on the 5th, across the year end, at its time of day",
      anchor: "2026-11-05T23:59:59.999Z",
      cadence: "month",
      starts: ["2026-11-05T23:59:59.999Z", "2026-12-05T23:59:59.999Z", "2027-01-05T23:59:59.999Z",
        "2027-02-05T23:59:59.999Z"],
    },
    {
      name: "a Feb 29 yearly anchor → Feb 28 in common years → Feb 29 again in 2032",
      anchor: "2028-02-29T08:30:00.000Z",
      cadence: "year",
      starts: ["2028-02-29T08:30:00.000Z", "2029-02-28T08:30:00.000Z", "2030-02-28T08:30:00.000Z",
        "2031-02-28T08:30:00.000Z", "2032-02-29T08:30:00.000Z"],
    },
    {
      name: "a yearly anchor on the 5th renews each year on the same date",
      anchor: "2026-03-05T00:00:00.000Z",
      cadence: "year",
      starts: ["2026-03-05T00:00:00.000Z", "2027-03-05T00:00:00.000Z", "2028-03-05T00:00:00.000Z"],
    },
  ];
  it.each(cases)("$name", ({ anchor, cadence, starts }) => {
    expect(starts.map((_, k) => iso(periodStartAt(ms(anchor), cadence, k)))).toEqual(starts);
  });

  it("counts back for negative k, and refuses what it cannot compute", () => {
    expect(iso(periodStartAt(ms("2027-03-31T10:00:00.000Z"), "month", -1))).toBe("2027-02-28T10:00:00.000Z");
    expect(() => periodStartAt(0, "week" as Cadence, 1)).toThrow(RangeError);
    expect(() => periodStartAt(0.5, "month", 1)).toThrow(RangeError);
  });
});

describe("the period holding now", () => {
  const cases: Array<{ name: string; anchor: string; cadence: Cadence; now: string; start: string; end: string; index: number }> = [
    {
      name: "at the anchor itself: period 0",
      anchor: "2027-01-31T10:00:00.000Z", cadence: "month", now: "2027-01-31T10:00:00.000Z",
      start: "2027-01-31T10:00:00.000Z", end: "2027-02-28T10:00:00.000Z", index: 0,
    },
    {
      name: "a millisecond before the end: still the old period",
      anchor: "2027-01-31T10:00:00.000Z", cadence: "month", now: "2027-02-28T09:59:59.999Z",
      start: "2027-01-31T10:00:00.000Z", end: "2027-02-28T10:00:00.000Z", index: 0,
    },
    {
      name: "exactly at the end: the next period",
      anchor: "2027-01-31T10:00:00.000Z", cadence: "month", now: "2027-02-28T10:00:00.000Z",
      start: "2027-02-28T10:00:00.000Z", end: "2027-03-31T10:00:00.000Z", index: 1,
    },
    {
      name: "earlier in the day of the reset: the period before",
      anchor: "2026-11-05T12:00:00.000Z", cadence: "month", now: "2027-01-05T11:00:00.000Z",
      start: "2026-12-05T12:00:00.000Z", end: "2027-01-05T12:00:00.000Z", index: 1,
    },
    {
      name: "an account untouched for three months lands in the right period, once",
      anchor: "2026-11-05T00:00:00.000Z", cadence: "month", now: "2027-02-20T15:00:00.000Z",
      start: "2027-02-05T00:00:00.000Z", end: "2027-03-05T00:00:00.000Z", index: 3,
    },
    {
      name: "a 31st anchor untouched from Jan to late Apr: Apr 30 is not reached yet",
      anchor: "2027-01-31T10:00:00.000Z", cadence: "month", now: "2027-04-30T09:00:00.000Z",
      start: "2027-03-31T10:00:00.000Z", end: "2027-04-30T10:00:00.000Z", index: 2,
    },
    {
      name: "years apart, monthly",
      anchor: "2027-01-31T10:00:00.000Z", cadence: "month", now: "2041-02-28T10:00:00.000Z",
      start: "2041-02-28T10:00:00.000Z", end: "2041-03-31T10:00:00.000Z", index: 169,
    },
    {
      name: "years apart, yearly from Feb 29, in a common year",
      anchor: "2028-02-29T08:30:00.000Z", cadence: "year", now: "2035-02-28T08:29:59.999Z",
      start: "2034-02-28T08:30:00.000Z", end: "2035-02-28T08:30:00.000Z", index: 6,
    },
    {
      name: "yearly, later in the renewal month",
      anchor: "2028-02-29T08:30:00.000Z", cadence: "year", now: "2032-02-29T08:30:00.000Z",
      start: "2032-02-29T08:30:00.000Z", end: "2033-02-28T08:30:00.000Z", index: 4,
    },
  ];
  it.each(cases)("$name", ({ anchor, cadence, now, start, end, index }) => {
    const p = periodContaining(ms(anchor), cadence, ms(now));
    expect({ start: iso(p.startMs), end: iso(p.endMs), index: p.index }).toEqual({ start, end, index });
  });
});

/** A scratch folder holding a copy of period.lua and a wrapper script that runs it over batches of ARGV. */
function wrapperScript(): string {
  const dir = mkdtempSync(join(tmpdir(), "period-lua-"));
  mkdirSync(join(dir, "includes"));
  copyFileSync(
    fileURLToPath(new URL("../../src/ledger/lua/includes/period.lua", import.meta.url)),
    join(dir, "includes", "period.lua"),
  );
  // ARGV: anchor, cadence, now, k per case. Returns start, end, index of period_containing, then
  // period_start_at(k), all as %d strings (ioredis rounds integer replies near 2^53).
  writeFileSync(join(dir, "period-check-0.lua"), [
    '--- @include "includes/period"',
    "local out = {}",
    "for i = 1, #ARGV, 4 do",
    "  local anchor, cadence, now, k = tonumber(ARGV[i]), ARGV[i + 1], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])",
    "  local s, e, n = period_containing(anchor, cadence, now)",
    "  for _, v in ipairs({ s, e, n, period_start_at(anchor, cadence, k) }) do",
    "    out[#out + 1] = string.format('%d', v)",
    "  end",
    "end",
    "return out",
  ].join("\n"));
  return loadScript(pathToFileURL(`${dir}/`), "period-check-0");
}

describe("the Lua twin", () => {
  it("agrees with the TypeScript on the issue's dates and on thousands of random cases", async () => {
    const lua = wrapperScript();
    const lo = ms("1900-01-01T00:00:00.000Z");
    const hi = ms("9999-12-31T23:59:59.999Z");
    const end31 = [ms("2027-01-31T10:00:00.000Z"), ms("2028-02-29T08:30:00.000Z"), ms("1900-03-31T00:00:00.000Z")];
    const triple = fc
      .record({
        anchor: fc.oneof(fc.integer({ min: lo, max: hi }), fc.constantFrom(...end31)),
        cadence: fc.constantFrom<Cadence>("month", "year"),
        // mostly within a few years of the anchor (many month ends), sometimes anywhere later
        gap: fc.oneof(fc.integer({ min: 0, max: 5 * 366 * 86_400_000 }), fc.integer({ min: 0, max: hi - lo })),
        k: fc.integer({ min: -50, max: 500 }),
      })
      .map(({ anchor, cadence, gap, k }) => ({ anchor, cadence, now: Math.min(anchor + gap, hi), k }));
    const cases = fc.sample(triple, { numRuns: 4000, seed: 20260401 });
    // exact hits on period boundaries, where an off-by-one would show
    for (const c of cases.slice(0, 500)) cases.push({ ...c, now: periodStartAt(c.anchor, c.cadence, c.k < 0 ? 0 : c.k % 40) });

    for (let i = 0; i < cases.length; i += 1000) {
      const batch = cases.slice(i, i + 1000);
      const args = batch.flatMap((c) => [String(c.anchor), c.cadence, String(c.now), String(c.k)]);
      const reply = (await env.redis.eval(lua, 0, ...args)) as string[];
      const expected = batch.flatMap((c) => {
        const p = periodContaining(c.anchor, c.cadence, c.now);
        return [p.startMs, p.endMs, p.index, periodStartAt(c.anchor, c.cadence, c.k)].map(String);
      });
      // compare case by case so a failure names its inputs
      for (let j = 0; j < batch.length; j++) {
        const got = reply.slice(4 * j, 4 * j + 4);
        const want = expected.slice(4 * j, 4 * j + 4);
        if (got.join() !== want.join()) expect({ case: batch[j], lua: got }).toEqual({ case: batch[j], lua: want });
      }
      expect(reply).toHaveLength(expected.length);
    }
    // sanity on the TS side for every case: the period holds now, and ends where the next one starts
    for (const c of cases) {
      const p = periodContaining(c.anchor, c.cadence, c.now);
      expect(p.startMs <= c.now && c.now < p.endMs).toBe(true);
      expect(p.startMs).toBe(periodStartAt(c.anchor, c.cadence, p.index));
      expect(p.endMs).toBe(periodStartAt(c.anchor, c.cadence, p.index + 1));
    }
  });
});
