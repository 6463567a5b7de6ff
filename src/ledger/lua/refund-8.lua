--[[
  Gives a reservation's credits back: a held one is released in full (a failed generation costs nothing); a settled
  one gets its charge back, once (a support refund). Credits go back to the buckets they came from; a bucket that
  has expired meanwhile cannot take them, so that part is recorded as expired.

  KEYS[1] account hash        KEYS[2] holds zset        KEYS[3] ledger stream
  KEYS[4] reservation hash    KEYS[5] sweep index zset   KEYS[6] members hash
  KEYS[7] events stream of the account's slot                KEYS[8] usage hash (includes/usage.lua)
  ARGV[1] now ms ('' = Redis clock)   ARGV[2] account id   ARGV[3] request id   ARGV[4] reason
  ARGV[5] record retention ms         ARGV[6] ledger max length
  ARGV[7] days of usage aggregates kept (0 = all)          ARGV[8] ledger retention ms (0 = keep all)

  The ledger entry names the generation's member, operation and model. A refund of a settled reservation counts in
  today's usage aggregates of its (operation, model): credits down, refunded up, on the day of the refund.

  Returns
    { 0, refunded, available_after, to_expired, state }   state: 'r' refunded, 'x' the hold had already expired
    { 1, ... }                                            already refunded: the first reply
    { -2 }                                                no such reservation
]]
--- @include "includes/account"
--- @include "includes/usage"

local r = hgetall_map(KEYS[4])
if not r.st then
  return { -2 }
end
if r.rst then
  return { 1, r.rf, r.rav, r.rfx, r.rst }
end

local now = clock(ARGV[1])
local a = load_account(KEYS[1], now, ARGV[2], KEYS[2], KEYS[5], KEYS[3], tonumber(ARGV[6]), KEYS[6], KEYS[7])
local request_id = ARGV[3]
local member_id = r.mb or ''
local refunded, to_expired, state = 0, 0, 'r'
keep_ledger_for(a, tonumber(ARGV[8]))

if r.st == 'h' then
  local member = hold_member(request_id, r.d, member_id)
  local deadline = live_deadline(a, member)
  touch(a)
  if deadline then
    refunded = tonumber(r.amt)
    to_expired = give_back(a, parse_draws(r.d))
    a.held = a.held - refunded
    mark_total(a, 'held')
    member_held(a, member_id, -refunded)
    end_hold(a, member)
  else
    state = 'x'
  end
else
  -- Settled: the charge goes back where it came from.
  touch(a)
  refunded = tonumber(r.ch)
  to_expired = give_back(a, parse_draws(r.cd))
  a.charged = a.charged - refunded
  mark_total(a, 'charged')
  member_charged(a, member_id, -refunded)
  period_charged(a, -refunded)
end

local avail = available(a)
redis.call('HSET', KEYS[4], 'st', state, 'rst', state, 'rf', int(refunded), 'rfx', int(to_expired),
  'rav', int(avail), 'rf_t', int(now), 'rr', ARGV[4])
redis.call('PEXPIRE', KEYS[4], tonumber(ARGV[5]))

local entry = { 'op', 'refund', 't', int(now), 'req', request_id, 'amt', int(refunded), 'd',
  (r.st == 'h') and r.d or r.cd, 'to_expired', int(to_expired), 'from', r.st, 'reason', ARGV[4] }
local op, model = r.opn or '', r.mdl or ''
put_nonempty(entry, 'member', member_id)
put_nonempty(entry, 'operation', op)
put_nonempty(entry, 'model', model)
log_entry(a, entry)
if r.st == 's' then
  usage_add(KEYS[8], now, tonumber(ARGV[7]), op, model, 0, -refunded, refunded, 0, 0)
end
emit(a, 'refund', { 'req', request_id, 'amt', int(refunded), 'to_expired', int(to_expired), 'from', r.st,
  'reason', ARGV[4] })
save_account(a)
return { 0, int(refunded), int(avail), int(to_expired), state }
