// The ledger's ids are the times its entries were recorded; retention by age trims it; the usage aggregates survive.
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { afterEach, describe, expect, it } from "vitest";
import { DAY, HOUR, MINUTE } from "../support/ledger.js";
import { useTestRedis } from "../support/redis.js";
import { T0, type Harness, harness } from "./harness.js";

const env = useTestRedis();
let h: Harness;
const acct = "acme";
afterEach(() => h.close());

async function entries(): Promise<Array<{ id: string; ms: number; t: number; op: string }>> {
  const raw = await env.redis.xrange(h.ledger.keys.account(acct).ledger, "-", "+");
  return raw.map(([id, f]) => {
    const m = new Map<string, string>();
    for (let i = 0; i < f.length; i += 2) m.set(f[i]!, f[i + 1]!);
    return { id, ms: Number(id.split("-")[0]), t: Number(m.get("t")), op: m.get("op") ?? "" };
  });
}

describe("stream ids by time", () => {
  it("every entry's id is the time its script ran, sequence numbers within a millisecond", async () => {
    h = harness(env.redis);
    await h.grant(acct, 100);
    await h.chat(acct, "m-small", { input: 1, output: 1 });
    h.clock.advance(1234);
    await h.chat(acct, "m-small", { input: 1, output: 1 });
    expect((await entries()).map((e) => e.id)).toEqual([`${T0}-0`, `${T0}-1`, `${T0}-2`, `${T0 + 1234}-0`, `${T0 + 1234}-1`]);
  });

  it("an expired hold's entry carries its deadline in t; its id is when it was recorded", async () => {
    h = harness(env.redis);
    await h.grant(acct, 100);
    await h.reserve(acct, { operation: "rewrite" });
    h.clock.advance(HOUR);
    await h.chat(acct, "m-small", { input: 1, output: 1 });
    const expired = (await entries()).find((e) => e.op === "hold_expired");
    expect(expired).toMatchObject({ t: T0 + 600_000, ms: T0 + HOUR });
  });

  it("when the clock goes back, entries take the last id's millisecond: written, in order, t as the clock said", async () => {
    h = harness(env.redis);
    await h.grant(acct, 100);
    h.clock.set(T0 + HOUR);
    await h.chat(acct, "m-small", { input: 1, output: 1 }, { requestId: "late" });
    h.clock.set(T0 + MINUTE);
    await h.chat(acct, "m-small", { input: 2, output: 2 }, { requestId: "back" });
    h.clock.set(T0 + 2 * HOUR);
    await h.chat(acct, "m-small", { input: 3, output: 3 }, { requestId: "forward" });

    const e = await entries();
    expect(e.map((x) => x.id)).toEqual([
      `${T0}-0`,
      `${T0 + HOUR}-0`, `${T0 + HOUR}-1`,
      // Refused at T0 + 1 minute: the last id's millisecond, next sequence numbers.
      `${T0 + HOUR}-2`, `${T0 + HOUR}-3`,
      `${T0 + 2 * HOUR}-0`, `${T0 + 2 * HOUR}-1`,
    ]);
    expect(e.map((x) => x.t)).toEqual([T0, T0 + HOUR, T0 + HOUR, T0 + MINUTE, T0 + MINUTE, T0 + 2 * HOUR, T0 + 2 * HOUR]);
    // Nothing was lost: all three charges are listed, newest written first, each with the time it was recorded.
    const { records } = await h.list(acct);
    expect(records.map((r) => [r.requestId, timestampMs(r.time!)])).toEqual([
      ["forward", T0 + 2 * HOUR],
      ["back", T0 + MINUTE],
      ["late", T0 + HOUR],
    ]);
    expect((await h.ledger.audit(acct)).ok).toBe(true);
  });
});

describe("retention by age (CREDITD_LEDGER_RETENTION_DAYS)", () => {
  it("old entries go on the account's next write; the usage summary still counts them", async () => {
    h = harness(env.redis, { ledgerRetentionMs: 2 * DAY });
    await h.grant(acct, 100_000);
    for (let i = 0; i < 300; i++) await h.chat(acct, "m-small", { input: 1, output: 1 });
    const before = await entries();
    expect(before).toHaveLength(601);

    // Idle for five days: nothing is trimmed until the account is written to again.
    h.clock.set(T0 + 5 * DAY);
    expect(await entries()).toHaveLength(601);
    await h.chat(acct, "m-large", { input: 1, output: 1 }, { requestId: "today" });

    const after = await entries();
    const old = after.filter((e) => e.ms < T0 + 3 * DAY);
    // Trimming is approximate (whole stream nodes): at most one node of old entries (100 at most) stays.
    expect(old.length).toBeLessThan(100);
    expect(after.slice(-2).map((e) => e.op)).toEqual(["reserve", "settle"]);
    // What stays is the newest of the old entries: the stream is only ever trimmed from its oldest end.
    expect(old.map((e) => e.id)).toEqual(before.slice(before.length - old.length).map((e) => e.id));

    // ListUsage from three days ago sees only today's charge; the summary of the first day still has all 300.
    const recent = await h.list(acct, { filter: { from: timestampFromMs(T0 + 3 * DAY) } });
    expect(recent.records.map((r) => r.requestId)).toEqual(["today"]);
    const day1 = (await h.summary(acct, "2026-01-15", "2026-01-15")).totals;
    expect(day1).toMatchObject({ generations: 300n, creditsMicros: 300n * 3000n, inputTokens: 300n, outputTokens: 300n });
    const today = (await h.summary(acct, "2026-01-20", "2026-01-20")).totals;
    expect(today).toMatchObject({ generations: 1n, creditsMicros: 40_000n });
  });

  it("0 keeps every entry whatever its age", async () => {
    h = harness(env.redis, { ledgerRetentionMs: 0 });
    await h.grant(acct, 100_000);
    for (let i = 0; i < 150; i++) await h.chat(acct, "m-small", { input: 1, output: 1 });
    h.clock.set(T0 + 400 * DAY);
    await h.chat(acct, "m-small", { input: 1, output: 1 });
    expect(await entries()).toHaveLength(303);
  });

  it("the size cap still applies beside it", async () => {
    h = harness(env.redis, { ledgerRetentionMs: 30 * DAY, maxLen: 200 });
    await h.grant(acct, 100_000);
    for (let i = 0; i < 400; i++) await h.chat(acct, "m-small", { input: 1, output: 1 });
    const n = (await entries()).length;
    expect(n).toBeGreaterThanOrEqual(200);
    expect(n).toBeLessThan(400);
  });
});
