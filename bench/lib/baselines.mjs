// The Redis-side baselines of section 2 (bench/run.mjs) and bench/redis-ir.mjs, on one ioredis client, and the
// cycle they are compared with (ledgerCycle):
// - the minimal pair (bench/lua/min-*.lua): hold and charge one balance, nothing else;
// - the command floor (bench/lua/floor-*.lua): the commands creditd's Reserve and Settle issue for a one-bucket
//   account, values from ARGV, no logic. Not a target: what the features' commands cost by themselves;
// - the lean pair (bench/lua/lean-*.lua): only the four features the target names (buckets, idempotency, ledger
//   entry, hold deadline), in as few commands as they allow. Not a target: what a redesign could come to at best.
import { readFileSync } from "node:fs";

const lua = (f) => readFileSync(new URL(`../lua/${f}`, import.meta.url), "utf8");

/**
 * Makes `accounts` funded balances of each kind (account ids `${accountPrefix}${i}`) and returns one cycle of each,
 * for call i: `minCycle(i)` and `floorCycle(i)` (whose request ids start with `requestPrefix`, unique per i).
 */
export async function baselineCycles(redis, { accounts, balance, accountPrefix, requestPrefix }) {
  redis.defineCommand("minHold", { numberOfKeys: 1, lua: lua("min-hold.lua") });
  redis.defineCommand("minCharge", { numberOfKeys: 1, lua: lua("min-charge.lua") });
  redis.defineCommand("floorHold", { numberOfKeys: 5, lua: lua("floor-hold.lua") });
  redis.defineCommand("floorCharge", { numberOfKeys: 5, lua: lua("floor-charge.lua") });
  redis.defineCommand("leanHold", { numberOfKeys: 4, lua: lua("lean-hold.lua") });
  redis.defineCommand("leanCharge", { numberOfKeys: 4, lua: lua("lean-charge.lua") });
  const pipe = redis.pipeline();
  for (let i = 0; i < accounts; i++) {
    pipe.hset(`min:{${accountPrefix}${i}}`, "avail", balance, "held", 0, "charged", 0);
    pipe.hset(`floor:{${accountPrefix}${i}}`, "granted", balance, "held", 0, "charged", 0, "expired", 0, "nb", 1,
      "b1.r", balance, "b1.g", balance, "b1.k", "topup", "b1.p", 0, "b1.x", 0, "b1.t", Date.now(), "b1.gid", `g${i}`);
    pipe.hset(`lean:{${accountPrefix}${i}}`, "av", balance, "b1", balance / 2, "b2", balance / 2);
  }
  await pipe.exec();
  const minCycle = async (i) => {
    const key = `min:{${accountPrefix}${i % accounts}}`;
    if ((await redis.minHold(key, 1_000_000)) < 0) throw new Error("min hold refused");
    await redis.minCharge(key, 1_000_000, 600_000);
  };
  const floorCycle = async (i) => {
    const a = `floor:{${accountPrefix}${i % accounts}}`;
    const req = `${requestPrefix}-${i}`;
    const now = Date.now();
    const keys = [a, `${a}:holds`, `${a}:ledger`, `${a}:rsv:${req}`];
    await redis.floorHold(...keys, `${a}:claim:${req}`, `${accountPrefix}${i % accounts}`, req, "1000000", now, now + 60_000, "1:1000000", balance);
    await redis.floorCharge(...keys, `${a}:usage`, req, "600000", now, "1:600000", "400000", balance, "2026-11-22/0:0:");
  };
  let leanSeq = 0; // the lean pair refuses a repeated request id, and callers count i from 0 in every loop
  const leanCycle = async (i) => {
    const a = `lean:{${accountPrefix}${i % accounts}}`;
    const req = `${requestPrefix}-${leanSeq++}`;
    const keys = [a, `${a}:holds`, `${a}:ledger`, `${a}:rec:${req}`];
    const h = await redis.leanHold(...keys, req, 1_000_000, 60_000, 86_460_000);
    if (h[0] !== 0) throw new Error(`lean hold: ${h}`);
    const s = await redis.leanCharge(...keys, req, 600_000);
    if (s[0] !== 0) throw new Error(`lean charge: ${s}`);
  };
  return { minCycle, floorCycle, leanCycle };
}

/**
 * creditd's side: reserve+settle call i on account `${accountPrefix}${i % accounts}` through a Ledger (any build's),
 * request id `${tag}-${i}`, holding 1 credit and charging 0.6 of it; throws unless both succeed.
 */
export const ledgerCycle = (ledger, accountPrefix, accounts, tag) => async (i) => {
  const accountId = `${accountPrefix}${i % accounts}`;
  const requestId = `${tag}-${i}`;
  const h = await ledger.reserve({ accountId, requestId, amountMicros: 1_000_000, ttlMs: 600_000 });
  if (h.status !== "held") throw new Error(`reserve: ${h.status}`);
  const s = await ledger.settle({ accountId, requestId }, 600_000);
  if (s.status !== "settled") throw new Error(`settle: ${s.status}`);
};
