--[[
  Reads a reservation (changes nothing).

  KEYS[1] reservation hash   KEYS[2] holds zset
  ARGV[1] now ms ('' = Redis clock)   ARGV[2] request id

  Returns { 0, fields (flat list), live_deadline or -1, now }   { -2 } when there is no such reservation
]]
--- @include "includes/account"

local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then
  return { -2 }
end
local r = redis.call('HMGET', KEYS[1], 'd', 'mb')
local score = redis.call('ZSCORE', KEYS[2], hold_member(ARGV[2], r[1], r[2] or ''))
return { 0, fields, score or '-1', int(clock(ARGV[1])) }
