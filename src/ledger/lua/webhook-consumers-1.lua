--[[
  Forgets the webhook group's consumers that own no pending entry and have been idle for a while
  (src/events/webhooks.ts): every process start names a new consumer, and without this each stream would keep one
  record per start, forever.

  KEYS[1]  the events stream of a hash slot     <prefix>:events:{<slot tag>}
  ARGV[1]  the consumer group ('webhooks')
  ARGV[2]  idle time (ms) past which a consumer with nothing pending is deleted
  ARGV[3]  the calling dispatcher's own consumer, never deleted

  One script, because XGROUP DELCONSUMER drops whatever the consumer has pending: read apart from the delete, a
  consumer could read an entry between the two and lose it from the pending list, so a failed delivery of it would
  never be retried. Here nothing runs in between. Returns how many consumers were deleted.
]]

local deleted = 0
for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local c = {}
  for i = 1, #consumer, 2 do c[consumer[i]] = consumer[i + 1] end
  if c.pending == 0 and c.idle > tonumber(ARGV[2]) and c.name ~= ARGV[3] then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], c.name)
    deleted = deleted + 1
  end
end
return deleted
