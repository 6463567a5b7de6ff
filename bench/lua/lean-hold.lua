-- The lean hold: the four features section 2's target names and nothing else, in as few commands as they allow.
-- Two buckets drawn in order, an idempotency record (one string with a TTL: a repeat gets it back), the hold's
-- deadline in a zset, a ledger entry. No claim key, no sweep index, no events, no member caps, no warnings, no plan,
-- no expiry of buckets: what a redesign of creditd's account down to the named features could come to at best.
-- KEYS[1] account hash (av: available, b1, b2: the buckets)  KEYS[2] holds zset  KEYS[3] ledger stream
-- KEYS[4] the request's record   ARGV[1] request id  ARGV[2] amount  ARGV[3] hold ttl ms  ARGV[4] record keep ms
-- Returns { 0, amount, available after, deadline }, { 1, record } for a repeat, { -1, available } when refused.
local seen = redis.call('GET', KEYS[4])
if seen then return { 1, seen } end
local amount = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local v = redis.call('HMGET', KEYS[1], 'av', 'b1', 'b2')
local avail = tonumber(v[1])
if avail < amount then return { -1, v[1] } end
local b1 = tonumber(v[2])
local d1 = b1 < amount and b1 or amount
local d2 = amount - d1
local deadline = now + ARGV[3]
redis.call('HSET', KEYS[1], 'av', avail - amount, 'b1', b1 - d1, 'b2', tonumber(v[3]) - d2)
local draws = d1 .. ',' .. d2
redis.call('SET', KEYS[4], 'h|' .. amount .. '|' .. draws .. '|' .. deadline, 'PX', ARGV[4])
redis.call('ZADD', KEYS[2], deadline, ARGV[1])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', '1000', '*', 'op', 'reserve', 't', now, 'req', ARGV[1], 'amt', amount,
  'd', draws)
return { 0, amount, avail - amount, deadline }
