--[[
  Touches an account (expired buckets and holds are settled, as on every change) and returns its balance.
  The sweeper calls it too, for accounts whose holds ran out while nobody touched them.

  KEYS[1] account hash   KEYS[2] holds zset   KEYS[3] ledger stream   KEYS[4] sweep index zset
  KEYS[5] members hash   KEYS[6] events stream of the account's slot
  ARGV[1] now ms ('' = Redis clock)   ARGV[2] account id   ARGV[3] ledger max length
  ARGV[4] member id ('' = none): that member's usage this period is returned too

  Returns { 0, available, held, granted, charged, expired, now, buckets, period, member }
    buckets: flat list of (number, kind, remaining, granted, priority, expires_at, created_at, grant_id), in draw order
    period: flat name, value list (empty without a subscription): plan, status, start, end, used, allowance,
            addons, trial, unlimited
    member: flat name, value list (empty without ARGV[4]): held, used, cap
]]
--- @include "includes/account"

local now = clock(ARGV[1])
local a = load_account(KEYS[1], now, ARGV[2], KEYS[2], KEYS[4], KEYS[3], tonumber(ARGV[3]), KEYS[5], KEYS[6])
touch(a)
local member = {}
if ARGV[4] ~= '' then
  local st = member_state(a, ARGV[4])
  member = { 'held', int(st.h), 'used', int(member_used(a, st)), 'cap', a.sub.st and a.sub.st ~= 'ended' and a.sub.cap or '0' }
end
if has_changes(a) then
  save_account(a)
end
local list = {}
for _, b in ipairs(draw_order(a)) do
  list[#list + 1] = b.id
  list[#list + 1] = b.k
  list[#list + 1] = int(b.r)
  list[#list + 1] = int(b.g)
  list[#list + 1] = int(b.p)
  list[#list + 1] = int(b.x)
  list[#list + 1] = int(b.t)
  list[#list + 1] = b.gid
end
local period = {}
if a.sub.st then
  local sums = period_buckets(a)
  period = { 'plan', a.sub.plan, 'status', a.sub.st, 'start', a.per.s or '0', 'end', a.per.e or '0',
    'used', a.per.u or '0', 'allowance', int(sums.allowance.g), 'addons', int(sums.addon.g), 'trial', int(sums.trial.g),
    'unlimited', unlimited(a) and '1' or '0' }
end
return { 0, int(available(a)), int(a.held), int(a.granted), int(a.charged), int(a.expired), int(now), list, period,
  member }
