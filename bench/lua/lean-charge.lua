-- The lean charge (see lean-hold.lua): ends the hold, charges ARGV[2] of it and gives the rest back to the buckets it
-- came from (the last drawn first), marks the record settled (a repeat gets it back), removes the deadline, writes
-- the ledger entry. KEYS as lean-hold.lua. ARGV[1] request id  ARGV[2] charge
-- Returns { 0, charged, released }, { 1, record } for a repeat, { -2 } for an unknown request.
local rec = redis.call('GET', KEYS[4])
if not rec then return { -2 } end
local st, amt, d1, d2 = string.match(rec, '^(%a)|(%d+)|(%d+),(%d+)|')
if st ~= 'h' then return { 1, rec } end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
amt, d2 = tonumber(amt), tonumber(d2)
local charge = tonumber(ARGV[2])
if charge > amt then charge = amt end
local back = amt - charge
local back2 = back < d2 and back or d2
local v = redis.call('HMGET', KEYS[1], 'av', 'b1', 'b2')
redis.call('HSET', KEYS[1], 'av', v[1] + back, 'b1', v[2] + (back - back2), 'b2', v[3] + back2)
redis.call('SET', KEYS[4], 's|' .. amt .. '|' .. charge .. '|' .. now, 'KEEPTTL')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', '1000', '*', 'op', 'settle', 't', now, 'req', ARGV[1], 'amt', charge,
  'rel', back)
return { 0, charge, back }
