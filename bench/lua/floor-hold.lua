-- The command floor of a Reserve: the Redis commands reserve-8.lua issues for a one-bucket account (request-id claim
-- check, idempotency read, clock, account read, reservation write and its expiry, the claim, the hold's deadline, the
-- account write, the ledger entry), with every value taken from ARGV and no logic at all: what the features' commands
-- alone cost Redis, whatever the Lua around them does.
-- KEYS[1] account hash  KEYS[2] holds zset  KEYS[3] ledger stream  KEYS[4] reservation hash  KEYS[5] claim
-- ARGV[1] account id  ARGV[2] request id  ARGV[3] amount  ARGV[4] now ms  ARGV[5] deadline ms  ARGV[6] draws
-- ARGV[7] bucket remaining after
redis.call('GET', KEYS[5])
redis.call('HMGET', KEYS[4], 'amt', 'av', 'exp', 'd', 'fp')
redis.call('TIME')
redis.call('HGETALL', KEYS[1])
redis.call('HSET', KEYS[4], 'st', 'h', 'amt', ARGV[3], 't', ARGV[4], 'exp', ARGV[5], 'd', ARGV[6], 'av', ARGV[7])
redis.call('PEXPIRE', KEYS[4], '86460000')
redis.call('SET', KEYS[5], ARGV[1], 'PX', '86460000')
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[2] .. '|' .. ARGV[6])
redis.call('HSET', KEYS[1], 'b1.r', ARGV[7], 'held', ARGV[3])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', '1000', '*', 'op', 'reserve', 't', ARGV[4], 'req', ARGV[2],
  'amt', ARGV[3], 'd', ARGV[6], 'exp', ARGV[5])
return 0
