--[[
  Touches an account (expired buckets and holds are settled, as on every change) and returns its balance.
  The sweeper calls it too, for accounts whose holds ran out while nobody touched them.

  KEYS[1] account hash   KEYS[2] holds zset   KEYS[3] ledger stream   KEYS[4] sweep index zset
  ARGV[1] now ms ('' = Redis clock)   ARGV[2] account id   ARGV[3] ledger max length

  Returns { 0, available, held, granted, charged, expired, now, buckets }
    buckets: flat list of (number, kind, remaining, granted, priority, expires_at, created_at, grant_id), in draw order
]]
--- @include "includes/account"

local now = clock(ARGV[1])
local a = load_account(KEYS[1], now, ARGV[2], KEYS[2], KEYS[4], KEYS[3], tonumber(ARGV[3]))
touch(a)
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
return { 0, int(available(a)), int(a.held), int(a.granted), int(a.charged), int(a.expired), int(now), list }
