import { describe, expect, test } from "vitest";
import { type Catalog, CatalogError, parseCatalog } from "../../src/pricing/catalog.js";
import { defaultCatalog } from "../../src/pricing/default-catalog.js";
import {
  addonCreditsMicros,
  describePlan,
  MAX_SEATS,
  type Plan,
  type PlanAddon,
  planAllowanceMicros,
  planWorstCaseMicros,
  resolvePlan,
} from "../../src/pricing/plans.js";

const C = 1_000_000;
const HEAD = "operations:\n  a: { price: 1 }\nplans:\n";
/** A catalog with these plans (YAML indented under `plans:`). */
const withPlans = (plans: string): Catalog => parseCatalog(HEAD + plans);

/** Every problem of a bad plans section, as "path: message". */
function problems(plans: string): string[] {
  try {
    withPlans(plans);
  } catch (e) {
    expect(e).toBeInstanceOf(CatalogError);
    return (e as CatalogError).problems.map((p) => `${p.path}: ${p.message}`);
  }
  throw new Error("the catalog was accepted");
}
/** The one problem of a bad plans section. */
const problem = (plans: string): string => {
  const all = problems(plans);
  expect(all).toHaveLength(1);
  return all[0]!;
};

describe("parsing", () => {
  const c = withPlans(`
  base:
    name: Base plan
    credits: 40.5
    credits_per_seat: "0.000001"
    period: year
    billing: month
    legacy: true
    aliases: [base-2021, old.base]
    member_cap: 12.25
    warn_at: [5, 25, 50]
    trial: { credits: 50, days: 14 }
    addons:
      extra:
        name: Extra credits
        credits: 60
        per_seat: true
        max_units: 1000
      pack: { credits: 0.5 }
  bare: { credits: 1 }
  seats: { credits_per_seat: 150 }
  ent: { unlimited: true, member_cap: 0, trial: { credits: 0, days: 365 } }
  no-cap: { credits: 1, unlimited: false }
`);

  test("every field", () => {
    const p = c.plans.get("base")!;
    expect(p).toEqual({
      id: "base",
      name: "Base plan",
      period: "year",
      billing: "month",
      creditsMicros: 40_500_000,
      creditsPerSeatMicros: 1,
      unlimited: false,
      legacy: true,
      aliases: ["base-2021", "old.base"],
      memberCapMicros: 12_250_000,
      trial: { creditsMicros: 50 * C, days: 14 },
      addons: new Map<string, PlanAddon>([
        ["extra", { id: "extra", name: "Extra credits", creditsPerUnitMicros: 60 * C, perSeat: true, maxUnits: 1000 }],
        ["pack", { id: "pack", name: "pack", creditsPerUnitMicros: 500_000, perSeat: false, maxUnits: 10_000 }],
      ]),
      warnAtPercent: [50, 25, 5],
    } satisfies Plan);
    expect(typeof p.creditsMicros).toBe("number"); // plain numbers, not bigint: they go to Lua
  });

  test("defaults", () => {
    expect(c.plans.get("bare")).toEqual({
      id: "bare",
      name: "bare",
      period: "month",
      billing: "month",
      creditsMicros: C,
      creditsPerSeatMicros: 0,
      unlimited: false,
      legacy: false,
      aliases: [],
      memberCapMicros: undefined,
      trial: undefined,
      addons: new Map(),
      warnAtPercent: [20, 5],
    } satisfies Plan);
    expect(c.plans.get("seats")).toMatchObject({ creditsMicros: 0, creditsPerSeatMicros: 150 * C });
    expect(c.plans.get("ent")).toMatchObject({ unlimited: true, creditsMicros: 0, creditsPerSeatMicros: 0, memberCapMicros: 0, trial: { creditsMicros: 0, days: 365 } });
    expect(c.plans.get("no-cap")!.unlimited).toBe(false);
    // billing defaults to the period
    expect(withPlans("  y: { credits: 1, period: year }\n").plans.get("y")).toMatchObject({ period: "year", billing: "year" });
  });

  test("warn_at: percentages 1-99, each once; [] for no warnings", () => {
    expect(withPlans("  w: { credits: 1, warn_at: [] }\n").plans.get("w")!.warnAtPercent).toEqual([]);
    for (const [yaml, want] of [
      ["  w: { credits: 1, warn_at: 20 }\n", 'plans["w"].warn_at: must be a list of percentages'],
      ["  w: { credits: 1, warn_at: [0] }\n", 'plans["w"].warn_at[0]: must be an integer between 1 and 99'],
      ["  w: { credits: 1, warn_at: [100] }\n", 'plans["w"].warn_at[0]: must be an integer between 1 and 99'],
      ["  w: { credits: 1, warn_at: [10.5] }\n", 'plans["w"].warn_at[0]: must be an integer between 1 and 99'],
      ["  w: { credits: 1, warn_at: [20, 20] }\n", 'plans["w"].warn_at[1]: 20 is listed twice'],
    ] as const) {
      expect(() => withPlans(yaml)).toThrow(want);
    }
  });

  test("plans keep file order; aliases map to their plan", () => {
    expect([...c.plans.keys()]).toEqual(["base", "bare", "seats", "ent", "no-cap"]);
    expect([...c.planAliases]).toEqual([
      ["base-2021", "base"],
      ["old.base", "base"],
    ]);
  });

  test("a catalog without plans (or with an empty or null section) has empty maps", () => {
    for (const yaml of ["operations:\n  a: { price: 1 }\n", `${HEAD}`, `${HEAD.trimEnd()} {}\n`]) {
      const e = parseCatalog(yaml);
      expect(e.plans.size).toBe(0);
      expect(e.planAliases.size).toBe(0);
    }
  });

  test("YAML anchors and JSON work", () => {
    const a = withPlans("  a: { credits: 1, addons: &x { more: { credits: 5 } } }\n  b: { credits: 2, addons: *x }\n");
    expect(a.plans.get("b")!.addons.get("more")!.creditsPerUnitMicros).toBe(5 * C);
    const j = parseCatalog(`{"operations": {"a": {"price": 1}}, "plans": {"p": {"credits": "2.5", "aliases": ["q"]}}}`);
    expect(resolvePlan(j, "q")!.creditsMicros).toBe(2_500_000);
  });

  test("a file with only plans still has to price something", () => {
    expect(() => parseCatalog("plans:\n  p: { credits: 1 }\n")).toThrow(/declares nothing to price/);
  });
});

describe("resolvePlan", () => {
  const c = withPlans("  pro: { credits: 5, aliases: [pro-2021, legacy-pro] }\n  free: { credits: 1 }\n");
  test("by id or alias; undefined when unknown; case-sensitive", () => {
    expect(resolvePlan(c, "pro")!.id).toBe("pro");
    expect(resolvePlan(c, "pro-2021")).toBe(c.plans.get("pro"));
    expect(resolvePlan(c, "legacy-pro")).toBe(c.plans.get("pro"));
    expect(resolvePlan(c, "free")!.creditsMicros).toBe(C);
    expect(resolvePlan(c, "Pro")).toBeUndefined();
    expect(resolvePlan(c, "nope")).toBeUndefined();
    expect(resolvePlan(parseCatalog("operations:\n  a: { price: 1 }\n"), "pro")).toBeUndefined();
  });
});

describe("validation: every problem, with its path", () => {
  test("the section and plan ids", () => {
    expect(problem("  - a\n")).toBe("plans: must be a mapping");
    expect(problem('  "-bad": { credits: 1 }\n')).toBe('plans["-bad"]: a plan id is 1-128 characters of A-Z a-z 0-9 . _ : / @ + - (starting with a letter or digit)');
    expect(problem('  "has space": { credits: 1 }\n')).toMatch(/^plans\["has space"\]: a plan id is/);
    expect(problem(`  ${"x".repeat(129)}: { credits: 1 }\n`)).toMatch(/: a plan id is/);
    expect(withPlans(`  ${"x".repeat(128)}: { credits: 1 }\n`).plans.size).toBe(1);
    expect(problem("  p: 5\n")).toBe('plans["p"]: must be a mapping');
    expect(problem("  p:\n")).toBe('plans["p"]: must be a mapping');
  });

  test("unknown fields, at every level", () => {
    expect(problem("  p: { credits: 1, credit: 2 }\n")).toBe(
      'plans["p"].credit: unknown field (expected one of: name, credits, credits_per_seat, unlimited, period, billing, legacy, aliases, member_cap, trial, addons, warn_at)',
    );
    expect(problem("  p: { credits: 1, trial: { credits: 1, days: 2, months: 1 } }\n")).toBe('plans["p"].trial.months: unknown field (expected one of: credits, days)');
    expect(problem("  p: { credits: 1, addons: { x: { credits: 1, perSeat: true } } }\n")).toBe(
      'plans["p"].addons["x"].perSeat: unknown field (expected one of: name, credits, per_seat, max_units)',
    );
    expect(problems("  p: { credits: 1 }\nplan: {}\n")[0]).toMatch(/^plan: unknown field \(expected one of: .*plans\)$/);
  });

  test("credits and credits_per_seat", () => {
    expect(problem("  p: { credits: -1 }\n")).toBe('plans["p"].credits: must be ≥ 0');
    expect(problem("  p: { credits: 1.0000001 }\n")).toBe('plans["p"].credits: must have at most 6 decimal places, got "1.0000001"');
    expect(problem("  p: { credits: 1000000000.000001 }\n")).toBe('plans["p"].credits: must be ≤ 1000000000');
    expect(withPlans("  p: { credits: 1000000000 }\n").plans.get("p")!.creditsMicros).toBe(1e15);
    expect(problem("  p: { credits: true }\n")).toBe('plans["p"].credits: must be a number of credits');
    expect(problem("  p: { credits: .inf }\n")).toBe('plans["p"].credits: must be a finite decimal number, got .inf');
    expect(problem("  p: { credits: 0x10 }\n")).toMatch(/^plans\["p"\].credits: must be a decimal number/);
    expect(problem("  p: { credits: }\n")).toBe('plans["p"].credits: must be a number of credits');
    expect(problem("  p: { credits_per_seat: -0.5 }\n")).toBe('plans["p"].credits_per_seat: must be ≥ 0');
    expect(problem("  p: { credits_per_seat: abc }\n")).toBe('plans["p"].credits_per_seat: must be a decimal number, got "abc"');
  });

  test("a plan must give credits (or be unlimited)", () => {
    const msg = 'plans["p"]: gives no credits: set credits > 0 or credits_per_seat > 0, or unlimited: true (a plan with 0 credits refuses every paid request)';
    expect(problem("  p: { name: Free }\n")).toBe(msg);
    expect(problem("  p: { credits: 0, credits_per_seat: 0 }\n")).toBe(msg);
    expect(problem("  p: { credits: 0, unlimited: false }\n")).toBe(msg);
    expect(problem("  p: {}\n")).toBe(msg);
  });

  test("unlimited plans", () => {
    const not = "not allowed with unlimited: true (an unlimited plan never refuses for credits)";
    expect(problems("  p: { unlimited: true, credits: 10, credits_per_seat: 0, addons: { x: { credits: 1 } } }\n")).toEqual([
      `plans["p"].credits: ${not}`,
      `plans["p"].credits_per_seat: ${not}`,
      `plans["p"].addons: ${not}`,
    ]);
    expect(problem("  p: { unlimited: true, credits: 0 }\n")).toBe(`plans["p"].credits: ${not}`);
    expect(problem("  p: { unlimited: yes, credits: 1 }\n")).toBe('plans["p"].unlimited: must be true or false'); // YAML 1.2: yes is a string
  });

  test("period, billing, legacy, name", () => {
    expect(problem("  p: { credits: 1, period: monthly }\n")).toBe('plans["p"].period: must be "month" or "year"');
    expect(problem("  p: { credits: 1, billing: week }\n")).toBe('plans["p"].billing: must be "month" or "year"');
    expect(problem("  p: { credits: 1, billing: 12 }\n")).toBe('plans["p"].billing: must be "month" or "year"');
    expect(problem("  p: { credits: 1, legacy: 1 }\n")).toBe('plans["p"].legacy: must be true or false');
    expect(problem('  p: { credits: 1, name: "" }\n')).toBe('plans["p"].name: must be a non-empty string');
  });

  test("aliases", () => {
    expect(problem("  p: { credits: 1, aliases: q }\n")).toBe('plans["p"].aliases: must be a list of strings');
    expect(problem('  p: { credits: 1, aliases: ["a b"] }\n')).toBe('plans["p"].aliases[0]: a plan alias is 1-128 characters of A-Z a-z 0-9 . _ : / @ + - (starting with a letter or digit)');
    expect(problem("  p: { credits: 1, aliases: [1] }\n")).toBe('plans["p"].aliases[0]: must be a non-empty string');
    expect(problem("  p: { credits: 1, aliases: [p] }\n")).toBe('plans["p"].aliases[0]: "p" is the plan\'s own id');
    expect(problem("  p: { credits: 1, aliases: [x, x] }\n")).toBe('plans["p"].aliases[1]: "x" is listed twice');
  });

  test("alias collisions with other plans' ids and aliases are refused", () => {
    expect(problem("  p: { credits: 1, aliases: [q] }\n  q: { credits: 2 }\n")).toBe('plans["p"].aliases[0]: "q" is already a plan id');
    expect(problem("  p: { credits: 1, aliases: [old] }\n  q: { credits: 2, aliases: [old] }\n")).toBe('plans["q"].aliases[0]: "old" is already an alias of plan p');
    // a plan that is itself invalid still owns its id
    expect(problems("  p: { credits: 1, aliases: [q] }\n  q: { credits: -2 }\n")).toEqual([
      'plans["q"].credits: must be ≥ 0',
      'plans["p"].aliases[0]: "q" is already a plan id',
    ]);
  });

  test("member_cap", () => {
    expect(problem("  p: { credits: 1, member_cap: -1 }\n")).toBe('plans["p"].member_cap: must be ≥ 0');
    expect(problem("  p: { credits: 1, member_cap: none }\n")).toBe('plans["p"].member_cap: must be a decimal number, got "none"');
  });

  test("trial", () => {
    expect(problem("  p: { credits: 1, trial: 14 }\n")).toBe('plans["p"].trial: must be a mapping');
    expect(problem("  p: { credits: 1, trial: { days: 14 } }\n")).toBe('plans["p"].trial.credits: required (credits the trial gives; 0 for none)');
    expect(problem("  p: { credits: 1, trial: { credits: 5 } }\n")).toBe('plans["p"].trial.days: required (length of the trial, 1 to 365 days)');
    for (const d of ["0", "366", "1.5", "-1", '"x"']) {
      expect(problem(`  p: { credits: 1, trial: { credits: 5, days: ${d} } }\n`)).toBe('plans["p"].trial.days: must be an integer between 1 and 365');
    }
    expect(problem("  p: { credits: 1, trial: { credits: -5, days: 3 } }\n")).toBe('plans["p"].trial.credits: must be ≥ 0');
  });

  test("add-ons", () => {
    expect(problem("  p: { credits: 1, addons: [x] }\n")).toBe('plans["p"].addons: must be a mapping');
    expect(problem('  p: { credits: 1, addons: { "x y": { credits: 1 } } }\n')).toBe('plans["p"].addons["x y"]: an add-on id is 1-128 characters of A-Z a-z 0-9 . _ : / @ + - (starting with a letter or digit)');
    expect(problem("  p: { credits: 1, addons: { x: 5 } }\n")).toBe('plans["p"].addons["x"]: must be a mapping');
    expect(problem("  p: { credits: 1, addons: { x: { name: X } } }\n")).toBe('plans["p"].addons["x"].credits: required (credits one unit gives per period, > 0)');
    expect(problem("  p: { credits: 1, addons: { x: { credits: 0 } } }\n")).toBe('plans["p"].addons["x"].credits: must be > 0');
    expect(problem("  p: { credits: 1, addons: { x: { credits: 1, per_seat: 1 } } }\n")).toBe('plans["p"].addons["x"].per_seat: must be true or false');
    for (const m of ["0", "1000001", "2.5"]) {
      expect(problem(`  p: { credits: 1, addons: { x: { credits: 1, max_units: ${m} } } }\n`)).toBe('plans["p"].addons["x"].max_units: must be an integer between 1 and 1000000');
    }
    expect(problem('  p: { credits: 1, addons: { x: { credits: 1, name: "" } } }\n')).toBe('plans["p"].addons["x"].name: must be a non-empty string');
  });

  test("the 2^53 bound: a period at MAX_SEATS with every add-on at max_units must be a safe integer of micros", () => {
    // Number.MAX_SAFE_INTEGER micros = 9,007,199,254.740991 credits; 100,000 seats × 90,071 = 9,007,100,000 credits
    const ok = withPlans("  p: { credits_per_seat: 90071, credits: 99254.740991 }\n").plans.get("p")!;
    expect(planWorstCaseMicros(ok)).toBe(BigInt(Number.MAX_SAFE_INTEGER));
    expect(planAllowanceMicros(ok, MAX_SEATS)).toBe(Number.MAX_SAFE_INTEGER);
    const over =
      'plans["p"]: at 100000 seats with every add-on at its max_units, one period could give 9007199254.740992 credits, ' +
      "more than the 9007199254.740991 an amount can hold exactly: lower credits_per_seat, an add-on's credits or its max_units";
    expect(problem("  p: { credits_per_seat: 90071, credits: 99254.740992 }\n")).toBe(over);
    expect(problem("  p: { credits_per_seat: 90072 }\n")).toMatch(/^plans\["p"\]: at 100000 seats .* could give 9007200000 credits/);
    // a per-seat add-on at the default max_units (10,000): 60 × 10,000 × 100,000 credits
    expect(problem("  p: { credits: 60, addons: { unit: { credits: 60, per_seat: true } } }\n")).toMatch(/could give 60000000060 credits/);
    expect(withPlans("  p: { credits: 60, addons: { unit: { credits: 60, per_seat: true, max_units: 1000 } } }\n").plans.size).toBe(1);
    // shared add-ons count once, not per seat
    expect(problem("  p: { credits: 1, addons: { x: { credits: 1000000000 } } }\n")).toMatch(/could give 10000000000001 credits/);
    expect(withPlans("  p: { credits: 1, addons: { x: { credits: 900000, max_units: 10000 } } }\n").plans.size).toBe(1);
    // every add-on adds up
    expect(problem("  p: { credits: 1, addons: { x: { credits: 500000 }, y: { credits: 500000 } } }\n")).toMatch(/could give 10000000001 credits/);
  });

  test("all problems of a file are collected, with lines", () => {
    let err: CatalogError | undefined;
    try {
      withPlans("  a: { credits: -1 }\n  b:\n    period: weekly\n    credits: 5\n  c: { unlimited: true, credits: 1 }\n");
    } catch (e) {
      err = e as CatalogError;
    }
    expect(err!.problems).toEqual([
      { path: 'plans["a"].credits', message: "must be ≥ 0", line: 4 },
      { path: 'plans["b"].period', message: 'must be "month" or "year"', line: 6 },
      { path: 'plans["c"].credits', message: "not allowed with unlimited: true (an unlimited plan never refuses for credits)", line: 8 },
    ]);
    expect(err!.message).toContain('plans["b"].period: must be "month" or "year" (line 6)');
  });
});

describe("arithmetic", () => {
  const c = withPlans(`
  team: { credits: 10, credits_per_seat: 150.5, addons: { shared: { credits: 200 }, seat: { credits: 2.25, per_seat: true, max_units: 100 } } }
  ent: { unlimited: true }
  max: { credits_per_seat: 90000, addons: { u: { credits: 0.7, per_seat: true, max_units: 10 } } }
`);
  const team = c.plans.get("team")!;
  const shared = team.addons.get("shared")!;
  const seat = team.addons.get("seat")!;

  test("planAllowanceMicros: credits + credits_per_seat × seats; 0 for unlimited", () => {
    expect(planAllowanceMicros(team, 0)).toBe(10 * C);
    expect(planAllowanceMicros(team, 1)).toBe(160_500_000);
    expect(planAllowanceMicros(team, 3)).toBe(461_500_000);
    expect(planAllowanceMicros(team, MAX_SEATS)).toBe(10 * C + 150_500_000 * MAX_SEATS);
    expect(planAllowanceMicros(c.plans.get("ent")!, 50)).toBe(0);
  });

  test("addonCreditsMicros: units × credits, × seats when per seat", () => {
    expect(addonCreditsMicros(shared, 3, 50)).toBe(600 * C); // shared: seats do not matter
    expect(addonCreditsMicros(shared, 0, 50)).toBe(0);
    expect(addonCreditsMicros(seat, 3, 4)).toBe(27 * C);
    expect(addonCreditsMicros(seat, 100, MAX_SEATS)).toBe(22_500_000_000_000);
  });

  test("seats and units out of range are refused", () => {
    for (const s of [-1, 1.5, MAX_SEATS + 1, Number.NaN, Infinity]) {
      expect(() => planAllowanceMicros(team, s)).toThrow(RangeError);
      expect(() => addonCreditsMicros(shared, 1, s)).toThrow(RangeError);
    }
    expect(() => planAllowanceMicros(team, MAX_SEATS + 1)).toThrow("seats must be an integer between 0 and 100000, got 100001");
    expect(() => addonCreditsMicros(seat, 101, 1)).toThrow("units must be an integer between 0 and 100, got 101");
    expect(() => addonCreditsMicros(seat, -1, 1)).toThrow(RangeError);
  });

  test("the largest period of an accepted plan is exact (below 2^53)", () => {
    const max = c.plans.get("max")!;
    const worst = planWorstCaseMicros(max);
    expect(worst).toBe(9_000_000_000_000_000n + 700_000_000_000n);
    const total = planAllowanceMicros(max, MAX_SEATS) + addonCreditsMicros(max.addons.get("u")!, 10, MAX_SEATS);
    expect(Number.isSafeInteger(total)).toBe(true);
    expect(BigInt(total)).toBe(worst);
  });

  test("describePlan: JSON-safe, credits as exact decimal strings", () => {
    expect(describePlan(team)).toEqual({
      id: "team",
      name: "team",
      period: "month",
      billing: "month",
      credits: "10",
      creditsPerSeat: "150.5",
      unlimited: false,
      legacy: false,
      aliases: [],
      memberCap: undefined,
      trial: undefined,
      addons: [
        { id: "shared", name: "shared", creditsPerUnit: "200", perSeat: false, maxUnits: 10_000 },
        { id: "seat", name: "seat", creditsPerUnit: "2.25", perSeat: true, maxUnits: 100 },
      ],
    });
    const p = withPlans("  p: { credits: 1, member_cap: 0.5, trial: { credits: 2, days: 7 } }\n").plans.get("p")!;
    expect(describePlan(p)).toMatchObject({ memberCap: "0.5", trial: { credits: "2", days: 7 } });
    expect(JSON.parse(JSON.stringify(describePlan(p)))).toMatchObject({ id: "p", credits: "1" });
  });
});

test("the default catalog has free, pro and unlimited plans", () => {
  const d = defaultCatalog();
  expect([...d.plans.keys()]).toEqual(["free", "pro", "unlimited"]);
  expect(d.plans.get("free")).toMatchObject({ name: "Free", creditsMicros: 100 * C, period: "month", unlimited: false });
  expect(d.plans.get("pro")).toMatchObject({ name: "Pro", creditsMicros: 2000 * C });
  expect(d.plans.get("pro")!.addons.get("extra")).toEqual({ id: "extra", name: "Extra credits", creditsPerUnitMicros: 1000 * C, perSeat: false, maxUnits: 100 });
  expect(d.plans.get("unlimited")).toMatchObject({ unlimited: true, creditsMicros: 0 });
  expect(d.planAliases.size).toBe(0);
});
