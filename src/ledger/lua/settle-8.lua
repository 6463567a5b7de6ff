--[[
  Charges the real cost of a reservation and releases the rest of its hold.

  KEYS[1] account hash        KEYS[2] holds zset        KEYS[3] ledger stream
  KEYS[4] reservation hash    KEYS[5] sweep index zset   KEYS[6] members hash
  KEYS[7] events stream of the account's slot                KEYS[8] usage hash (includes/usage.lua)
  ARGV[1] now ms ('' = Redis clock)   ARGV[2] account id   ARGV[3] request id   ARGV[4] charge
  ARGV[5] record retention ms         ARGV[6] ledger max length
  ARGV[7] receipt ('' when the charge was given as an amount): kept with the reservation and in the ledger entry
  ARGV[8] quantities charged ('' when the charge was given as an amount): "in,cached,out,reasoning,images,
          video_seconds,units", trailing zeros left out; in the ledger entry and the usage aggregates
  ARGV[9] days of usage aggregates kept (0 = all)          ARGV[10] ledger retention ms (0 = keep all)

  The ledger entry names the generation's member, operation and model (as the proxy named them at Reserve) beside
  the charge, and today's usage aggregates of that (operation, model) count it: one generation, the credits
  charged, its input and output tokens. A replay writes nothing.

  The charge comes first from the hold's own draws (in draw order), the rest of the hold goes back to its buckets,
  and any excess over the hold is taken from the live buckets in draw order. What the account cannot cover is
  recorded as uncovered: nothing goes negative. After the deadline the hold has already been released, so the
  whole charge is taken from what is available (the generation happened) and hold_expired is 1.

  Returns
    { 0, charged, released, available_after, hold_expired, uncovered, charge_draws, receipt, warnings }
    { 1, ... }                          already settled with the same charge: the first reply
    { -2 }                              no such reservation
    { -4, first_charge }                already settled with another charge
    { -5 }                              already refunded (or expired and closed by a refund)
]]
--- @include "includes/account"
--- @include "includes/usage"

local charge = tonumber(ARGV[4])
local r = hgetall_map(KEYS[4])
if not r.st then
  return { -2 }
end
if r.cq then
  if tonumber(r.cq) ~= charge then
    return { -4, r.cq }
  end
  return { 1, r.ch, r.rel, r.sav, r.hx, r.unc, r.cd, r.rc or '' }
end
if r.st ~= 'h' then
  return { -5 }
end

local now = clock(ARGV[1])
local a = load_account(KEYS[1], now, ARGV[2], KEYS[2], KEYS[5], KEYS[3], tonumber(ARGV[6]), KEYS[6], KEYS[7])
local request_id = ARGV[3]
local member_id = r.mb or ''
local member = hold_member(request_id, r.d, member_id)
local deadline = live_deadline(a, member) -- this hold first (see live_deadline)
keep_ledger_for(a, tonumber(ARGV[10]))
touch(a)

local hold_expired = deadline == nil
local held = r.amt + 0
local charge_draws, released = {}, 0
if not hold_expired then
  local from_hold = math.min(charge, held)
  local rest
  charge_draws, rest = split_draws(parse_draws(r.d), from_hold)
  released = held - from_hold
  give_back(a, rest)
  a.held = a.held - held
  mark_total(a, 'held')
  member_held(a, member_id, -held)
  end_hold(a, member)
end
local covered = charge_draws
local excess = charge - (hold_expired and 0 or math.min(charge, held))
local extra, extra_taken = take(a, excess)
for _, d in ipairs(extra) do covered[#covered + 1] = d end
local charged = charge - excess + extra_taken
local uncovered = excess - extra_taken
a.charged = a.charged + charged
mark_total(a, 'charged')
member_charged(a, member_id, charged)
period_charged(a, charged)

local avail = available(a)
local cd = format_draws(#covered > 1 and merge_draws(covered) or covered)
local hx = hold_expired and '1' or '0'
local now_s, charged_s, released_s, uncovered_s, avail_s = now_str(a), int(charged), int(released), int(uncovered),
  int(avail)
local rsv = { 'st', 's', 'cq', int(charge), 'ch', charged_s, 'rel', released_s,
  'unc', uncovered_s, 'cd', cd, 'hx', hx, 'st_t', now_s, 'sav', avail_s }
put_nonempty(rsv, 'rc', ARGV[7])
redis.call('HSET', KEYS[4], unpack(rsv))
redis.call('PEXPIRE', KEYS[4], ARGV[5])

local entry = { 'op', 'settle', 't', now_s, 'req', request_id, 'amt', charged_s, 'd', cd,
  'released', released_s, 'uncovered', uncovered_s, 'hold_expired', hx }
local op, model, qty = r.opn or '', r.mdl or '', ARGV[8]
put_nonempty(entry, 'member', member_id)
put_nonempty(entry, 'operation', op)
put_nonempty(entry, 'model', model)
put_nonempty(entry, 'qty', qty)
put_nonempty(entry, 'receipt', ARGV[7])
log_entry(a, entry)
local input_tokens, output_tokens = usage_tokens(qty)
usage_add(KEYS[8], now, tonumber(ARGV[9]), op, model, 1, charged, 0, input_tokens, output_tokens)
save_account(a)
return { 0, charged_s, released_s, avail_s, hx, uncovered_s, cd, ARGV[7], crossed(a) }
