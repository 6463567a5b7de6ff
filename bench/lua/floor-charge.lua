-- The command floor of a Settle (see floor-hold.lua): the Redis commands settle-8.lua issues for a one-bucket account
-- (reservation read, clock, account read, the hold's deadline, reservation write and its expiry, the hold's removal,
-- the account write, the ledger entry, the usage aggregate read and write), values from ARGV, no logic.
-- KEYS[1] account hash  KEYS[2] holds zset  KEYS[3] ledger stream  KEYS[4] reservation hash  KEYS[5] usage hash
-- ARGV[1] request id  ARGV[2] charge  ARGV[3] now ms  ARGV[4] draws  ARGV[5] released  ARGV[6] bucket remaining
-- ARGV[7] usage field of the day
local member = ARGV[1] .. '|' .. ARGV[4]
redis.call('HGETALL', KEYS[4])
redis.call('TIME')
redis.call('HGETALL', KEYS[1])
redis.call('ZSCORE', KEYS[2], member)
redis.call('HSET', KEYS[4], 'st', 's', 'cq', ARGV[2], 'ch', ARGV[2], 'rel', ARGV[5], 'unc', '0', 'cd', ARGV[4],
  'hx', '0', 'st_t', ARGV[3], 'sav', ARGV[6])
redis.call('PEXPIRE', KEYS[4], '86400000')
redis.call('ZREM', KEYS[2], member)
redis.call('HSET', KEYS[1], 'b1.r', ARGV[6], 'held', '0', 'charged', ARGV[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', '1000', '*', 'op', 'settle', 't', ARGV[3], 'req', ARGV[1],
  'amt', ARGV[2], 'd', ARGV[4], 'released', ARGV[5], 'uncovered', '0', 'hold_expired', '0')
redis.call('HMGET', KEYS[5], 'day', ARGV[7])
redis.call('HSET', KEYS[5], ARGV[7], '1,' .. ARGV[2] .. ',0,0,0')
return 0
