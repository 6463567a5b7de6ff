--[[
  Reads an account's totals, the sum of its buckets and the sum of its live holds, in one atomic snapshot
  (changes nothing), so the invariant granted = available + held + charged + expired can be checked.

  KEYS[1] account hash   KEYS[2] holds zset

  Returns { granted, held, charged, expired, bucket_sum, hold_sum, hold_count, negatives }
    negatives: how many buckets, totals or holds are below zero (must be 0)
]]
--- @include "includes/account"

local a = load_account(KEYS[1], 0, '', KEYS[2], '', '', 0)
local negatives = 0
local bucket_sum = 0
for _, b in pairs(a.buckets) do
  if b.r < 0 or b.r > b.g then negatives = negatives + 1 end
  bucket_sum = bucket_sum + b.r
end
for _, name in ipairs({ 'granted', 'held', 'charged', 'expired' }) do
  if a[name] < 0 then negatives = negatives + 1 end
end
local hold_sum, hold_count = 0, 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local _, draws_str = split_hold(m)
  local draws, total = parse_draws(draws_str)
  for _, d in ipairs(draws) do
    if d.amt <= 0 then negatives = negatives + 1 end
  end
  hold_sum = hold_sum + total
  hold_count = hold_count + 1
end
return { int(a.granted), int(a.held), int(a.charged), int(a.expired), int(bucket_sum), int(hold_sum), int(hold_count), int(negatives) }
