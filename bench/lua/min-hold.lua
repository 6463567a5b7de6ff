-- The minimal hold the bench compares creditd's Reserve script with: one balance, no buckets, no idempotency,
-- no ledger entry, no deadline. KEYS[1] balance hash; ARGV[1] amount. Returns the balance left, or -1.
local amount = tonumber(ARGV[1])
local avail = tonumber(redis.call('HGET', KEYS[1], 'avail') or '0')
if avail < amount then return -1 end
redis.call('HINCRBY', KEYS[1], 'held', amount)
return redis.call('HINCRBY', KEYS[1], 'avail', -amount)
