--[[
  Moves a webhook event that used its last delivery attempt to the slot's dead-letter stream (src/events/webhooks.ts).

  KEYS[1]  the events stream of a hash slot     <prefix>:events:{<slot tag>}
  KEYS[2]  the dead-letter stream of that slot  <prefix>:webhooks:dead:{<slot tag>}
  ARGV[1]  the consumer group ('webhooks')
  ARGV[2]  the events stream entry id
  ARGV[3]  the dead-letter stream's cap (approximate trimming; 0 = no cap)
  ARGV[4..] the dead letter's fields and values

  The XACK decides: only the call that takes the entry out of the group's pending list writes the dead letter, so
  two dispatchers that both gave up on the same entry (one stalled past its lease) leave one record, and an entry
  delivered meanwhile (acked) leaves none. Both keys carry the slot's tag, so this runs on one shard.
  Returns 1 when the dead letter was written, 0 when the entry was no longer pending.
]]

if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return 0
end
local args = { KEYS[2] }
local maxlen = tonumber(ARGV[3])
if maxlen > 0 then
  args[#args + 1] = 'MAXLEN'
  args[#args + 1] = '~'
  args[#args + 1] = ARGV[3]
end
args[#args + 1] = '*'
for i = 4, #ARGV do args[#args + 1] = ARGV[i] end
redis.call('XADD', unpack(args))
return 1
