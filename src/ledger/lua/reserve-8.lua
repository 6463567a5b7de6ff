--[[
  Holds credits for one generation.

  KEYS[1] account hash        KEYS[2] holds zset        KEYS[3] ledger stream
  KEYS[4] reservation hash    KEYS[5] sweep index zset (same slot as the account)   KEYS[6] members hash
  KEYS[7] events stream of the account's slot
  KEYS[8] the request id's claim (optional): on one Redis the claim is checked and made here, in the same call;
          on Cluster it lives in another slot, so the ledger makes it with SET NX GET before and passes 7 keys
  ARGV[1] now ms ('' = Redis clock)   ARGV[2] account id   ARGV[3] request id   ARGV[4] amount
  ARGV[5] hold ttl ms                 ARGV[6] record retention ms              ARGV[7] ledger max length (0 = no cap)
  ARGV[8] request fingerprint: what makes a repeat of this request id the same request (the amount, or a hash of
          the priced request)
  ARGV[9] pricing context for Settle ('' when none): opaque to Lua, never prompt text
  ARGV[10] catalog version the hold was priced with ('' when none)
  ARGV[11] workspace member id ('' when none): counted against the subscription's per-member cap
  ARGV[12] operation, ARGV[13] model of a priced request, as the proxy named them ('' when none): kept with the
          reservation, so its Settle and Refund entries and the usage aggregates name them
  ARGV[14] ledger retention ms (0 = keep all): older ledger entries are trimmed when this script writes

  Returns
    { 0, held, available_after, deadline, draws, warnings }   held now (warnings: what this hold crossed,
                                                    '20,5,depleted')
    { 1, held, available_after, deadline, draws }   the request id was seen: the first reply, nothing changed
    { -1, available, required }                     insufficient credits: nothing changed
    { -3, first_amount }                            the request id was used for a different request
    { -8, cap, used, held }                         the member's cap for this period would be passed: nothing changed
    { -11, other_account }                          (with KEYS[8]) the request id is another account's: nothing changed
]]
--- @include "includes/account"

local amount = tonumber(ARGV[4])
local claim = KEYS[8] and redis.call('GET', KEYS[8])
if claim and claim ~= ARGV[2] then
  return { -11, claim }
end
-- A new request id (nearly every call) is told by one field; a repeat reads the rest of its first reply.
local existing = redis.call('HGET', KEYS[4], 'amt') and redis.call('HMGET', KEYS[4], 'amt', 'av', 'exp', 'd', 'fp')
if existing then
  if (existing[5] or existing[1]) ~= ARGV[8] then
    return { -3, existing[1] }
  end
  return { 1, existing[1], existing[2], existing[3], existing[4] }
end

local now = clock(ARGV[1])
local a = load_account(KEYS[1], now, ARGV[2], KEYS[2], KEYS[5], KEYS[3], tonumber(ARGV[7]), KEYS[6], KEYS[7])
keep_ledger_for(a, tonumber(ARGV[14]))
touch(a)

local member_id = ARGV[11]
if member_id ~= '' then
  local cap = tonumber(a.sub.cap) or 0
  if cap > 0 and a.sub.st ~= 'ended' then
    local st = member_state(a, member_id)
    local used = member_used(a, st)
    if used + st.h + amount > cap then
      return { -8, int(cap), int(used), int(st.h) }
    end
  end
end

local avail = available(a)
local amount_s = int(amount)
if not covers(a, amount, avail) then
  -- A refusal changes nothing: not even the bookkeeping of the touch is written.
  return { -1, int(avail), amount_s }
end

local request_id = ARGV[3]
local draws = take(a, amount)
local draws_str = format_draws(draws)
local deadline = now + ARGV[5]
a.held = a.held + amount
mark_total(a, 'held')
member_held(a, member_id, amount)
avail = available(a)
local now_s, deadline_s, avail_s = now_str(a), int(deadline), int(avail)

-- One HSET for the reservation, whatever it carries.
local rsv = { 'st', 'h', 'amt', amount_s, 't', now_s, 'exp', deadline_s, 'd', draws_str, 'av', avail_s }
if ARGV[8] ~= amount_s then put_nonempty(rsv, 'fp', ARGV[8]) end
if ARGV[9] ~= '' then put_nonempty(rsv, 'pc', ARGV[9]) put_nonempty(rsv, 'cv', ARGV[10]) end
put_nonempty(rsv, 'mb', member_id)
put_nonempty(rsv, 'opn', ARGV[12])
put_nonempty(rsv, 'mdl', ARGV[13])
redis.call('HSET', KEYS[4], unpack(rsv))
local keep_ms = int(ARGV[5] + ARGV[6]) -- numeric text in arithmetic is a number, without a call to tonumber
redis.call('PEXPIRE', KEYS[4], keep_ms)
-- The claim is made only by a hold: a refusal leaves the request id free, as if never seen.
if KEYS[8] and not claim then
  redis.call('SET', KEYS[8], ARGV[2], 'PX', keep_ms)
end
redis.call('ZADD', KEYS[2], deadline_s, hold_member(request_id, draws_str, member_id))
if not a.nx or deadline < a.nx then set_nx(a, deadline) end

local entry = { 'op', 'reserve', 't', now_s, 'req', request_id, 'amt', amount_s, 'd', draws_str,
  'exp', deadline_s }
put_nonempty(entry, 'member', member_id)
log_entry(a, entry)
save_account(a)
return { 0, amount_s, avail_s, deadline_s, draws_str, crossed(a) }
