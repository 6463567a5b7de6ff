-- The minimal charge (the Settle counterpart of min-hold.lua): ends a hold of ARGV[1] and charges ARGV[2] of it,
-- giving the rest back. KEYS[1] balance hash. Returns the balance left.
local held, charge = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('HINCRBY', KEYS[1], 'held', -held)
redis.call('HINCRBY', KEYS[1], 'charged', charge)
return redis.call('HINCRBY', KEYS[1], 'avail', held - charge)
