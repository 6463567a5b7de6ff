--[[
  Adds a bucket of credits to an account. The grant id is the idempotency key.

  KEYS[1] account hash        KEYS[2] holds zset        KEYS[3] ledger stream
  KEYS[4] grant record hash   KEYS[5] sweep index zset   KEYS[6] members hash
  KEYS[7] events stream of the account's slot
  ARGV[1] now ms ('' = Redis clock)   ARGV[2] account id   ARGV[3] grant id   ARGV[4] amount
  ARGV[5] kind   ARGV[6] priority     ARGV[7] expires at ms (0 = never)       ARGV[8] record retention ms
  ARGV[9] ledger max length

  Returns
    { 0, bucket_number, created_at, available_after }   granted
    { 1, bucket_number, created_at, available_after }   the grant id was seen with the same grant: the first reply
    { -3, amount, kind, priority, expires_at }          the grant id was used for a different grant
    { -6, now }                                         expires_at is not in the future
    { -7, headroom }                                    the account's total granted would pass 2^53 - 1 micros
]]
--- @include "includes/account"

local amount, kind, priority, expires_at = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local g = redis.call('HMGET', KEYS[4], 'amt', 'k', 'p', 'x', 'b', 't', 'av')
if g[1] then
  if tonumber(g[1]) ~= amount or g[2] ~= kind or tonumber(g[3]) ~= priority or tonumber(g[4]) ~= expires_at then
    return { -3, g[1], g[2], g[3], g[4] }
  end
  return { 1, g[5], g[6], g[7] }
end

local now = clock(ARGV[1])
if expires_at ~= 0 and expires_at <= now then
  return { -6, int(now) }
end
local a = load_account(KEYS[1], now, ARGV[2], KEYS[2], KEYS[5], KEYS[3], tonumber(ARGV[9]), KEYS[6], KEYS[7])
if a.granted + amount > MAX_SAFE then
  return { -7, int(MAX_SAFE - a.granted) }
end
touch(a)

a.nb = a.nb + 1
a.granted = a.granted + amount
mark_total(a, 'nb')
mark_total(a, 'granted')
local n = int(a.nb)
local b = { id = n, n = a.nb, r = amount, g = amount, k = kind, p = priority, x = expires_at, t = now, gid = ARGV[3] }
a.buckets[n] = b
local prefix = 'b' .. n .. '.'
a.set[prefix .. 'r'] = int(amount)
a.set[prefix .. 'g'] = int(amount)
a.set[prefix .. 'k'] = kind
a.set[prefix .. 'p'] = int(priority)
a.set[prefix .. 'x'] = int(expires_at)
a.set[prefix .. 't'] = int(now)
a.set[prefix .. 'gid'] = ARGV[3]

local avail = available(a)
redis.call('HSET', KEYS[4], 'amt', int(amount), 'k', kind, 'p', int(priority), 'x', int(expires_at), 'b', n,
  't', int(now), 'av', int(avail))
redis.call('PEXPIRE', KEYS[4], tonumber(ARGV[8]))

log_entry(a, { 'op', 'grant', 't', int(now), 'grant', ARGV[3], 'bucket', 'b' .. n, 'kind', kind, 'amt', int(amount),
  'exp', int(expires_at) })
emit(a, 'grant', { 'grant', ARGV[3], 'bucket', 'b' .. n, 'kind', kind, 'amt', int(amount), 'exp', int(expires_at) })
save_account(a)
return { 0, int(a.nb), int(now), int(avail) }
