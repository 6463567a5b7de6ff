--[[
  Shared helpers for every script that changes an account (included by the loader, never run alone).

  The account hash (one per account, under the account's hash tag) holds:
    granted, held, charged, expired   running totals in micro-credits: granted = available + held + charged + expired
    nb                                the last bucket number handed out
    nx                                the earliest deadline of a live hold (absent when there is none); it may be
                                      earlier than the real one, never later, so a touch knows when to look
    b<N>.r  b<N>.g  b<N>.k  b<N>.p     bucket N: remaining, granted, kind, priority,
    b<N>.x  b<N>.t  b<N>.gid          expiry (ms, 0 = never), created (ms), the grant id that made it
    b<N>.u                            1 on a plan's unlimited allowance: it grows by what a draw needs (minted,
                                      granted and logged), so an unlimited plan never refuses and usage stays true
    s.*  n.*  p.*                     the subscription's terms, its scheduled change and its current period
                                      (see includes/subscription.lua)
  Live holds sit in the holds sorted set: score = deadline (ms), member = "<request_id>|<draws>" or
  "<request_id>|<draws>|<member_id>" for a workspace member's generation, where draws is
  "<bucket>:<amount>,..." in draw order.
  Member usage lives in the members hash (same hash tag): <member>.h held now, <member>.u charged in the period
  that started at <member>.p. Amounts are integers below 2^53, written with %d so no digit is lost
  (tostring() would print 1e+15), and returned as strings too: ioredis's RESP integer decoder rounds values
  within a few dozen of 2^53.
]]

local MAX_SAFE = 9007199254740991
local BUCKET_ATTRS = { 'r', 'g', 'k', 'p', 'x', 't', 'gid', 'u' }
-- Default draw priorities of the kinds a subscription creates (src/ledger/status.ts has all of them).
local PRIORITY = { allowance = 100, addon = 200, trial = 300 }
local TOTALS = { granted = true, held = true, charged = true, expired = true, nb = true }

local function int(n)
  return string.format('%d', n)
end

-- The call's time as text ('1763780000000'), formatted once: entries, events and ids all carry it.
local function now_str(a)
  local s = a.now_s
  if not s then
    s = int(a.now)
    a.now_s = s
  end
  return s
end

-- The injected clock: tests pass milliseconds; production passes '' and every replica uses this Redis's clock.
local function clock(arg)
  if arg ~= '' then
    return tonumber(arg)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- What a field name of the account hash is: { bucket number, attribute, the number parsed } for 'b<N>.<attr>';
-- { false, name, 's' | 'n' | 'p' } for a subscription field 's.<name>', 'n.<name>' or 'p.<name>'; false for any
-- other.
-- Field names repeat across calls and accounts, so the answer is kept (a bounded memo of pure string parsing:
-- it holds no account data, only what the name says) and a load does one table lookup per field, calling this
-- only for a name not in FIELD_KIND. (A subscribed account has some twenty subscription fields: parsed on every
-- load they cost more than its buckets.)
local FIELD_KIND, field_kinds = {}, 0
local function field_kind(f)
  local kind = false
  local n, attr = string.match(f, '^b(%d+)%.(%a+)$')
  if n then
    kind = { n, attr, tonumber(n) }
  else
    local c, name = string.match(f, '^([snp])%.(.+)$')
    if c then kind = { false, name, c } end
  end
  if field_kinds < 20000 then
    FIELD_KIND[f] = kind
    field_kinds = field_kinds + 1
  end
  return kind
end

-- The per-call state of an account. Lists only some calls use (del, zrem, removed, members, events, crossed) are
-- made when first written (see list_of); readers treat a missing one as empty.
local function load_account(key, now, account_id, holds_key, sweep_key, ledger_key, maxlen, members_key, events_key)
  local flat = redis.call('HGETALL', key)
  local buckets, sub, nxt, per = {}, {}, {}, {}
  local avail0 = 0
  local a = {
    key = key, now = now, account_id = account_id, holds_key = holds_key, sweep_key = sweep_key,
    ledger_key = ledger_key, maxlen = maxlen, members_key = members_key, events_key = events_key,
    granted = 0, held = 0, charged = 0, expired = 0, nb = 0, nx = false,
    buckets = buckets, set = {}, log = {}, nx_changed = false, sub = sub, nxt = nxt, per = per, avail0 = 0,
    -- Set later by some calls only: named here (nil) so the table is made with room for them, not grown.
    del = nil, zrem = nil, removed = nil, members = nil, events = nil, crossed = nil, ledger_minid = nil, now_s = nil,
  }
  for i = 1, #flat, 2 do
    local f, v = flat[i], flat[i + 1]
    local kind = FIELD_KIND[f]
    if kind == nil then kind = field_kind(f) end
    if kind and not kind[1] then
      local t = kind[3]
      if t == 's' then sub[kind[2]] = v
      elseif t == 'p' then per[kind[2]] = v
      else nxt[kind[2]] = v
      end
    elseif kind then
      local n, attr = kind[1], kind[2]
      local b = buckets[n]
      if not b then
        -- The attributes are named (nil) so the table is made at its final size.
        b = { id = n, n = kind[3], r = nil, g = nil, k = nil, p = nil, x = nil, t = nil, gid = nil, u = nil }
        buckets[n] = b
      end
      if attr == 'k' or attr == 'gid' then
        b[attr] = v
      else
        -- Most priorities and expiries are 0: a comparison, not a parse (and v + 0 parses without a call).
        v = v == '0' and 0 or v + 0
        b[attr] = v
        if attr == 'r' then avail0 = avail0 + v end
      end
    elseif f == 'nx' then
      a.nx = v + 0
    elseif TOTALS[f] then
      a[f] = v + 0
    end
  end
  a.avail0 = avail0
  return a
end

-- A per-call list of the account state, made when first written.
local function list_of(a, name)
  local l = a[name]
  if not l then
    l = {}
    a[name] = l
  end
  return l
end

-- Appends v to that list.
local function push(a, name, v)
  local l = list_of(a, name)
  l[#l + 1] = v
end

local NONE = {}

-- Queues an event for the slot's events stream (consumers: webhooks, WatchEvents); written by save_account, in
-- the same script as the change, so a refused call emits nothing.
local function emit(a, event_type, fields)
  local ev = { 'type', event_type, 'account', a.account_id, 't', now_str(a) }
  for _, v in ipairs(fields) do ev[#ev + 1] = v end
  push(a, 'events', ev)
end

local function mark_total(a, name)
  a.set[name] = int(a[name])
end

local function mark_remaining(a, b)
  a.set['b' .. b.id .. '.r'] = int(b.r)
end

-- Appends name, value to a flat field list (an entry, an HSET) unless value is empty: optional fields stay absent.
local function put_nonempty(list, name, value)
  if value ~= nil and value ~= '' then
    list[#list + 1] = name
    list[#list + 1] = value
  end
end

-- Queues a ledger entry; it is written by save_account, so a refused call writes nothing.
local function log_entry(a, fields)
  a.log[#a.log + 1] = fields
end

local function set_nx(a, nx)
  if nx ~= a.nx then
    a.nx = nx
    a.nx_changed = true
  end
end

-- Buckets in draw order: priority, then earliest expiry (never-expiring last), then age.
local function draw_before(x, y)
  if x.p ~= y.p then return x.p < y.p end
  local ex, ey = x.x, y.x
  if ex == 0 then ex = math.huge end
  if ey == 0 then ey = math.huge end
  if ex ~= ey then return ex < ey end
  return x.n < y.n
end

local function draw_order(a)
  local list = {}
  for _, b in pairs(a.buckets) do
    list[#list + 1] = b
  end
  if #list > 1 then table.sort(list, draw_before) end
  return list
end

local function available(a)
  local sum = 0
  for _, b in pairs(a.buckets) do
    sum = sum + b.r
  end
  return sum
end

-- Ends a bucket at time t: what it had left is recorded as expired.
local function expire_bucket(a, b, t)
  a.expired = a.expired + b.r
  mark_total(a, 'expired')
  a.buckets[b.id] = nil
  for _, attr in ipairs(BUCKET_ATTRS) do
    local f = 'b' .. b.id .. '.' .. attr
    a.set[f] = nil
    push(a, 'del', f)
  end
  log_entry(a, { 'op', 'expire', 't', int(t), 'bucket', 'b' .. b.id, 'kind', b.k, 'amt', int(b.r) })
end

-- A bucket stops counting the moment it expires. The due ones go in draw order (only they are sorted).
local function expire_buckets(a)
  local now, due = a.now, nil
  for _, b in pairs(a.buckets) do
    if b.x > 0 and b.x <= now then
      due = due or {}
      due[#due + 1] = b
    end
  end
  if not due then return end
  if #due > 1 then table.sort(due, draw_before) end
  for _, b in ipairs(due) do
    expire_bucket(a, b, b.x)
  end
end

-- Adds a bucket; every credit that enters an account is a grant entry in the ledger.
local function new_bucket(a, kind, amount, expires_at, gid, unlimited)
  a.nb = a.nb + 1
  a.granted = a.granted + amount
  mark_total(a, 'nb')
  mark_total(a, 'granted')
  local n = int(a.nb)
  local b = { id = n, n = a.nb, r = amount, g = amount, k = kind, p = PRIORITY[kind] or 300, x = expires_at,
    t = a.now, gid = gid, u = unlimited and 1 or nil }
  a.buckets[n] = b
  local prefix = 'b' .. n .. '.'
  a.set[prefix .. 'r'] = int(amount)
  a.set[prefix .. 'g'] = int(amount)
  a.set[prefix .. 'k'] = kind
  a.set[prefix .. 'p'] = int(b.p)
  a.set[prefix .. 'x'] = int(expires_at)
  a.set[prefix .. 't'] = now_str(a)
  a.set[prefix .. 'gid'] = gid
  if unlimited then a.set[prefix .. 'u'] = '1' end
  local entry = { 'op', 'grant', 't', now_str(a), 'grant', gid, 'bucket', 'b' .. n, 'kind', kind, 'amt', int(amount),
    'exp', int(expires_at) }
  if unlimited then
    entry[#entry + 1] = 'unlimited'
    entry[#entry + 1] = '1'
  end
  log_entry(a, entry)
  return b
end

-- Grows (or, never below what it has left, shrinks) a live bucket by delta credits, logged as a grant.
local function grow_bucket(a, b, delta, why)
  if delta == 0 then return end
  b.g = b.g + delta
  b.r = b.r + delta
  a.granted = a.granted + delta
  mark_total(a, 'granted')
  a.set['b' .. b.id .. '.g'] = int(b.g)
  a.set['b' .. b.id .. '.r'] = int(b.r)
  log_entry(a, { 'op', 'grant', 't', now_str(a), 'grant', b.gid, 'bucket', 'b' .. b.id, 'kind', b.k,
    'amt', int(delta), 'exp', int(b.x), 'why', why })
end

local function find_bucket(a, gid)
  for _, b in pairs(a.buckets) do
    if b.gid == gid then return b end
  end
  return nil
end

-- True when some live bucket is an unlimited allowance.
local function unlimited(a)
  for _, b in pairs(a.buckets) do
    if b.u == 1 then return true end
  end
  return false
end

-- Whether the account, with avail available, can give amount now (an unlimited allowance always can).
local function covers(a, amount, avail)
  return avail >= amount or unlimited(a)
end

local function parse_draws(s)
  -- One draw (a one-bucket account: most of them) is one match.
  local id, one = string.match(s, '^(%d+):(%d+)$')
  if id then
    one = one + 0
    return { { id = id, amt = one } }, one
  end
  local draws, total = {}, 0
  for n, amt in string.gmatch(s, '(%d+):(%d+)') do
    local v = tonumber(amt)
    draws[#draws + 1] = { id = n, amt = v }
    total = total + v
  end
  return draws, total
end

-- Adds draws for the same bucket together, keeping first-seen order.
local function merge_draws(draws)
  local merged, at = {}, {}
  for _, d in ipairs(draws) do
    local i = at[d.id]
    if i then
      merged[i].amt = merged[i].amt + d.amt
    else
      merged[#merged + 1] = { id = d.id, amt = d.amt }
      at[d.id] = #merged
    end
  end
  return merged
end

local function format_draws(draws)
  if #draws == 1 then return draws[1].id .. ':' .. int(draws[1].amt) end
  local parts = {}
  for i, d in ipairs(draws) do
    parts[i] = d.id .. ':' .. int(d.amt)
  end
  return table.concat(parts, ',')
end

-- Takes up to amount from the live buckets in draw order. Returns the draws and what was taken.
local function take(a, amount)
  local draws, left = {}, amount
  if left <= 0 then return draws, 0 end
  for _, b in ipairs(draw_order(a)) do
    if b.u == 1 and b.r < left then
      -- An unlimited allowance grows by what this draw needs: granted and logged, so the invariant holds.
      local minted = left - b.r
      b.g = b.g + minted
      b.r = left
      a.granted = a.granted + minted
      mark_total(a, 'granted')
      a.set['b' .. b.id .. '.g'] = int(b.g)
      log_entry(a, { 'op', 'grant', 't', now_str(a), 'grant', b.gid, 'bucket', 'b' .. b.id, 'kind', b.k,
        'amt', int(minted), 'exp', int(b.x), 'why', 'unlimited' })
    end
    if b.r > 0 then
      local t = math.min(b.r, left)
      b.r = b.r - t
      mark_remaining(a, b)
      draws[#draws + 1] = { id = b.id, amt = t }
      left = left - t
      if left == 0 then break end
    end
  end
  return draws, amount - left
end

-- Returns credits to the buckets they came from. A bucket that has expired (and so is gone) cannot take them
-- back: they are recorded as expired instead. Returns the part that went to expired.
local function give_back(a, draws)
  local to_expired = 0
  for _, d in ipairs(draws) do
    local b = a.buckets[d.id]
    if b then
      b.r = b.r + d.amt
      mark_remaining(a, b)
    else
      to_expired = to_expired + d.amt
    end
  end
  if to_expired > 0 then
    a.expired = a.expired + to_expired
    mark_total(a, 'expired')
  end
  return to_expired
end

-- Splits draws into a charged part (first, in draw order) and the rest.
local function split_draws(draws, charge)
  local charged, rest, left = {}, {}, charge
  for _, d in ipairs(draws) do
    local c = math.min(d.amt, left)
    if c > 0 then charged[#charged + 1] = { id = d.id, amt = c } end
    if d.amt > c then rest[#rest + 1] = { id = d.id, amt = d.amt - c } end
    left = left - c
  end
  return charged, rest
end

local function hold_member(request_id, draws_str, member_id)
  if member_id and member_id ~= '' then
    return request_id .. '|' .. draws_str .. '|' .. member_id
  end
  return request_id .. '|' .. draws_str
end

-- request id, draws, member id ('' for none) of a holds-set member.
local function split_hold(member)
  local request_id, draws_str, member_id = string.match(member, '^([^|]*)|([^|]*)|?(.*)$')
  return request_id, draws_str, member_id
end

-- ─── Workspace members ──────────────────────────────────────────────────────────────────────────

-- The period member usage counts in: the subscription's current period, or one endless period without one.
local function usage_period(a)
  return a.per.s or '0'
end

local function member_state(a, member_id)
  local st = (a.members or NONE)[member_id]
  if not st then
    local v = redis.call('HMGET', a.members_key, member_id .. '.h', member_id .. '.u', member_id .. '.p')
    st = { h = tonumber(v[1]) or 0, u = tonumber(v[2]) or 0, p = v[3] or '', dirty = false }
    list_of(a, 'members')[member_id] = st
  end
  return st
end

-- What a member has charged in the current period.
local function member_used(a, st)
  if st.p == usage_period(a) then return st.u end
  return 0
end

local function member_held(a, member_id, delta)
  if member_id == '' then return end
  local st = member_state(a, member_id)
  st.h = math.max(0, st.h + delta)
  st.dirty = true
end

local function member_charged(a, member_id, delta)
  if member_id == '' then return end
  local st = member_state(a, member_id)
  st.u = math.max(0, member_used(a, st) + delta)
  st.p = usage_period(a)
  st.dirty = true
end

-- Charged this period (only kept while the account has a subscription period).
local function period_charged(a, delta)
  if not a.per.s then return end
  a.per.u = int(math.max(0, (tonumber(a.per.u) or 0) + delta))
  a.set['p.u'] = a.per.u
end

-- Releases one live hold whose deadline has passed: its credits go back to their buckets. The member leaves the
-- holds set when the account is saved, like every other write, so a refused call leaves the set as it was.
local function expire_hold(a, member, deadline)
  if (a.removed or NONE)[member] then return end
  local request_id, draws_str, member_id = split_hold(member)
  local draws, amount = parse_draws(draws_str)
  a.held = a.held - amount
  mark_total(a, 'held')
  member_held(a, member_id, -amount)
  local to_expired = give_back(a, draws)
  list_of(a, 'removed')[member] = true
  push(a, 'zrem', member)
  log_entry(a, { 'op', 'hold_expired', 't', int(deadline), 'req', request_id, 'amt', int(amount),
    'd', draws_str, 'to_expired', int(to_expired) })
  emit(a, 'hold_expired', { 'req', request_id, 'amt', int(amount), 'deadline', int(deadline) })
end

-- The deadline of a live hold, or nil when it has none or it has passed: a passed one is released here first, so
-- a Settle or Refund right at its deadline treats it as expired even if more than a touch's worth are due.
local function live_deadline(a, member)
  local deadline = tonumber(redis.call('ZSCORE', a.holds_key, member))
  if deadline and deadline <= a.now then
    expire_hold(a, member, deadline)
    return nil
  end
  return deadline
end

-- Removes a hold that ended by Settle or Refund.
local function end_hold(a, member)
  list_of(a, 'removed')[member] = true
  push(a, 'zrem', member)
end

-- Releases the holds whose deadline has passed (bounded per call; the rest go on the next touch or sweep).
local DUE_PER_TOUCH = 256
local function release_due_holds(a)
  if not a.nx or a.nx > a.now then return end
  local due = redis.call('ZRANGEBYSCORE', a.holds_key, '-inf', now_str(a), 'WITHSCORES', 'LIMIT', 0, DUE_PER_TOUCH)
  for i = 1, #due, 2 do
    expire_hold(a, due[i], tonumber(due[i + 1]))
  end
  if #due / 2 == DUE_PER_TOUCH then
    set_nx(a, a.now) -- more are due: the next touch goes on
  else
    local nxt = redis.call('ZRANGEBYSCORE', a.holds_key, '(' .. now_str(a), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
    set_nx(a, nxt[2] and tonumber(nxt[2]) or false)
  end
end

-- A subscription's bucket (its grant id starts with '|') of a kind its period gives: allowance, add-on, trial.
local PERIOD_KIND = { allowance = true, addon = true, trial = true }
local function period_bucket(b)
  return PERIOD_KIND[b.k] and string.byte(b.gid, 1) == 124
end

-- The subscription's live buckets this period, by kind: { allowance = { g = granted, r = left }, addon, trial }.
local function period_buckets(a)
  local sums = { allowance = { g = 0, r = 0 }, addon = { g = 0, r = 0 }, trial = { g = 0, r = 0 } }
  for _, b in pairs(a.buckets) do
    if period_bucket(b) then
      local sum = sums[b.k]
      sum.g = sum.g + b.g
      sum.r = sum.r + b.r
    end
  end
  return sums
end

-- The credits the subscription gave this period (allowance, add-ons, trial): what warnings are measured against.
-- One pass, no tables (every call of a subscribed account asks, through check_warnings).
local function period_credits(a)
  local sum = 0
  for _, b in pairs(a.buckets) do
    if period_bucket(b) then sum = sum + b.g end
  end
  return sum
end

--- @include "includes/period"
--- @include "includes/subscription"

-- Every script that changes an account starts here: expired buckets and holds are settled first, then the
-- subscription's period rolls forward if it has ended (once, however many periods were missed).
local function touch(a)
  expire_buckets(a)
  release_due_holds(a)
  roll_period(a)
end

-- A warnings list ('20,5') as its percentages, text and number, in order; kept per list (a bounded memo: the
-- lists are a plan's terms, few and repeated on every call).
local WARN_PCTS, warn_lists = {}, 0
local function warn_pcts(list)
  local pcts = WARN_PCTS[list]
  if pcts then return pcts end
  pcts = {}
  for pct in string.gmatch(list, '%d+') do pcts[#pcts + 1] = { pct, tonumber(pct) } end
  if warn_lists < 1000 then
    WARN_PCTS[list] = pcts
    warn_lists = warn_lists + 1
  end
  return pcts
end

-- Low-credit warnings, decided here so racing sidecars fire each once: with a subscription, each percentage of
-- the period's credits fires once per period when what is available drops below it, and 'depleted' once when
-- nothing is left (both fire again after the next reset); without one, 'depleted' fires when a change empties
-- the account. The percentages that fired are in p.w, depleted in p.dep; a new period starts without them.
local function check_warnings(a)
  if a.sub.st and a.sub.st ~= 'ended' and a.per.s then
    if unlimited(a) then return end
    local avail, base = available(a), period_credits(a)
    local fired, seen = a.per.w or '', nil
    local changed = false
    if base > 0 then
      for _, p in ipairs(warn_pcts(a.sub.warn or '20,5')) do
        local pct = p[1]
        if avail < math.floor(base * p[2] / 100) then
          -- The ones that fired this period are read only when one is crossed.
          if not seen then
            seen = {}
            for f in string.gmatch(fired, '%d+') do seen[f] = true end
          end
          if not seen[pct] then
            seen[pct] = true
            fired = fired == '' and pct or (fired .. ',' .. pct)
            changed = true
            push(a, 'crossed', pct)
            emit(a, 'threshold', { 'percent', pct, 'available', int(avail), 'period_credits', int(base),
              'period_end', a.per.e or '' })
          end
        end
      end
    end
    if changed then set_field(a, 'p', 'w', fired) end
    if avail == 0 and a.per.dep ~= '1' and (base > 0 or a.avail0 > 0) then
      set_field(a, 'p', 'dep', '1')
      push(a, 'crossed', 'depleted')
      emit(a, 'depleted', { 'available', '0', 'period_credits', int(base), 'period_end', a.per.e or '' })
    end
  elseif a.avail0 > 0 and available(a) == 0 then
    push(a, 'crossed', 'depleted')
    emit(a, 'depleted', { 'available', '0', 'period_credits', '0', 'period_end', '' })
  end
end

-- Appends to a stream, trimmed to about maxlen_s entries (the cap as text, false for none). With id_ms (text) the
-- entry's id is '<id_ms>-<seq>' (Redis 7.0+): the ledger's ids are then the times its entries were recorded, so a
-- time range is an XRANGE of ids (ListUsage, ExportUsage, MINID retention). When the stream already holds a later id
-- (the clock moved back: a test's manual clock, or a Redis clock stepped back) Redis refuses that id and writes
-- nothing, and the entry takes the last entry's millisecond with the next sequence number: the stream stays in write
-- order, as close to id_ms as it can be. ('*' would do the same in production, where the scripts' clock is Redis's
-- own; with an injected clock it would jump to the server's wall-clock time instead.)
local function xadd_with(call, key, maxlen_s, id, fields)
  if maxlen_s then return call('XADD', key, 'MAXLEN', '~', maxlen_s, id, unpack(fields)) end
  return call('XADD', key, id, unpack(fields))
end

local function xadd(key, maxlen_s, fields, id_ms)
  if not id_ms then
    xadd_with(redis.call, key, maxlen_s, '*', fields)
    return
  end
  local r = xadd_with(redis.pcall, key, maxlen_s, id_ms .. '-*', fields)
  if type(r) == 'table' and r.err then
    -- A stream emptied by hand still remembers its last id, and has no entry to read it from: '*' then.
    local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)[1]
    xadd_with(redis.call, key, maxlen_s, last and (string.match(last[1], '^(%d+)') .. '-*') or '*', fields)
  end
end

-- Ledger entries older than retention_ms (0 = keep all) are trimmed when this script writes (see save_account).
local function keep_ledger_for(a, retention_ms)
  if retention_ms > 0 then a.ledger_minid = a.now - retention_ms end
end

local function save_account(a)
  check_warnings(a)
  local args = {}
  for f, v in pairs(a.set) do
    args[#args + 1] = f
    args[#args + 1] = v
  end
  if a.nx_changed then
    if a.nx then
      local nx = int(a.nx)
      args[#args + 1] = 'nx'
      args[#args + 1] = nx
      redis.call('ZADD', a.sweep_key, nx, a.account_id)
    else
      push(a, 'del', 'nx')
      redis.call('ZREM', a.sweep_key, a.account_id)
    end
  end
  if a.zrem then redis.call('ZREM', a.holds_key, unpack(a.zrem)) end
  local margs = nil
  for m, st in pairs(a.members or NONE) do
    if st.dirty then
      margs = margs or {}
      margs[#margs + 1] = m .. '.h'
      margs[#margs + 1] = int(st.h)
      margs[#margs + 1] = m .. '.u'
      margs[#margs + 1] = int(st.u)
      margs[#margs + 1] = m .. '.p'
      margs[#margs + 1] = st.p
    end
  end
  if margs then redis.call('HSET', a.members_key, unpack(margs)) end
  if a.del then redis.call('HDEL', a.key, unpack(a.del)) end
  if #args > 0 then redis.call('HSET', a.key, unpack(args)) end
  local ml = a.maxlen > 0 and int(a.maxlen)
  for _, fields in ipairs(a.log) do xadd(a.ledger_key, ml, fields, now_str(a)) end
  -- Retention by age (CREDITD_LEDGER_RETENTION_DAYS), on top of the size cap: the scripts that set
  -- a.ledger_minid drop entries whose id (their time) is older, approximately (whole stream nodes, about 100
  -- entries each), so an idle account's old entries go on its next write. The usage aggregates are kept apart.
  if a.ledger_minid and #a.log > 0 then
    redis.call('XTRIM', a.ledger_key, 'MINID', '~', int(a.ledger_minid))
  end
  if a.events and a.events_key then
    for _, ev in ipairs(a.events) do xadd(a.events_key, ml, ev) end
    -- A wake-up for live watchers: the channel names no key, the message is the stream to read.
    redis.call('PUBLISH', string.match(a.events_key, '^(.*):events:{') .. ':events', a.events_key)
  end
end

-- The warnings this call crossed, for its reply ('20,5,depleted').
local function crossed(a)
  return a.crossed and table.concat(a.crossed, ',') or ''
end

-- A touch that found nothing to do writes nothing.
local function has_changes(a)
  if next(a.set) ~= nil or a.del or #a.log > 0 or a.zrem or a.nx_changed or a.events then
    return true
  end
  for _, st in pairs(a.members or NONE) do
    if st.dirty then return true end
  end
  return false
end

local function hgetall_map(key)
  local flat = redis.call('HGETALL', key)
  local m = {}
  for i = 1, #flat, 2 do
    m[flat[i]] = flat[i + 1]
  end
  return m
end
