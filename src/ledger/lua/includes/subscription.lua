--[[
  Subscriptions (included by account.lua, never run alone). A subscription is a plan's terms copied into the
  account hash when SetSubscription runs (the catalog is the service's business; Lua never reads it), so every
  script can roll the period forward by itself, with no cron:

    s.plan  s.st  s.since             plan id; status: active | trialing | past_due | ended; when it started
    s.anc   s.cad                     billing anchor (ms, UTC, with its time of day); cadence: month | year
    s.seats s.cr  s.cps  s.unl        seats; credits per period; credits per seat per period; '1' = unlimited
    s.cap                             per-member cap per period (0 = none)
    s.ad                              add-ons: "<id>:<units>:<credits per unit>:<per seat 0|1>:<units next period>;..."
    s.tend                            end of the trial (while trialing)
    n.plan n.seats n.cr n.cps n.unl   a change that takes effect when the period ends (a downgrade, fewer seats)
    n.end                             '1': the subscription ends when the period ends
    s.warn                            low-credit warnings: percentages of the period's credits ('20,5'; '' = none)
    p.s  p.e  p.u                     the current period: start, end (= the next reset), charged in it
    p.w  p.dep                        warnings fired this period (percentages; '1' when depleted fired)

  The period's credits are buckets: the allowance (gid '|allowance'), one per add-on ('|addon:<id>') and the
  trial ('|trial'), each expiring at the period's end, so what is left is recorded as expired (no rollover) by
  the same expiry every bucket has. Grant ids cannot contain '|', so these never collide with Grant's.
]]

local SUB_TERMS = { 'plan', 'seats', 'cr', 'cps', 'unl' }

-- Sets (or, with nil, deletes) a subscription field; returns whether it changed. Unchanged fields are not written.
local function set_field(a, section, name, value)
  local store = section == 's' and a.sub or (section == 'n' and a.nxt or a.per)
  local f = section .. '.' .. name
  if store[name] == value then return false end
  store[name] = value
  if value == nil then
    a.set[f] = nil
    push(a, 'del', f)
  else
    a.set[f] = value
  end
  return true
end

local function decode_addons(s)
  local list = {}
  for id, units, cpu, ps, nu in string.gmatch(s or '', '([^,;]+),(%d+),(%d+),([01]),(%d+)') do
    list[#list + 1] = { id = id, units = tonumber(units), cpu = tonumber(cpu), ps = ps == '1', nu = tonumber(nu) }
  end
  return list
end

local function encode_addons(list)
  local parts = {}
  for _, ad in ipairs(list) do
    parts[#parts + 1] = ad.id .. ',' .. int(ad.units) .. ',' .. int(ad.cpu) .. ',' .. (ad.ps and '1' or '0') .. ','
      .. int(ad.nu)
  end
  return table.concat(parts, ';')
end

-- A plan's allowance per period at its seats; -1 when unlimited.
local function allowance_of(t)
  if t.unl == '1' then return -1 end
  return tonumber(t.cr) + tonumber(t.cps) * tonumber(t.seats)
end

local function addon_credits(ad, units, seats)
  return units * ad.cpu * (ad.ps and seats or 1)
end

-- The period's credits under the current terms: allowance and add-on buckets expiring at period_end.
local function grant_period_credits(a, period_end)
  local s = a.sub
  if s.unl == '1' then
    new_bucket(a, 'allowance', 0, period_end, '|allowance', true)
  else
    local amount = allowance_of(s)
    if amount > 0 then new_bucket(a, 'allowance', amount, period_end, '|allowance', false) end
  end
  for _, ad in ipairs(decode_addons(s.ad)) do
    local amount = addon_credits(ad, ad.units, tonumber(s.seats))
    if amount > 0 then new_bucket(a, 'addon', amount, period_end, '|addon:' .. ad.id, false) end
  end
end

-- Ends the subscription's own buckets (allowance, add-ons, trial) at the current time; top-ups and grants stay.
local function close_period_buckets(a)
  for _, b in ipairs(draw_order(a)) do
    if string.sub(b.gid, 1, 1) == '|' then expire_bucket(a, b, a.now) end
  end
end

local function end_subscription(a, at, why)
  set_field(a, 's', 'st', 'ended')
  set_field(a, 's', 'ended', int(at))
  set_field(a, 's', 'tend', nil)
  for name in pairs(a.nxt) do set_field(a, 'n', name, nil) end
  for _, name in ipairs({ 's', 'e', 'u' }) do set_field(a, 'p', name, nil) end
  -- Add-ons end with it: none renews (next units 0); the units that were in force stay on record.
  local ads = decode_addons(a.sub.ad)
  if #ads > 0 then
    for _, ad in ipairs(ads) do ad.nu = 0 end
    set_field(a, 's', 'ad', encode_addons(ads))
  end
  log_entry(a, { 'op', 'subscription_end', 't', int(at), 'plan', a.sub.plan, 'why', why })
end

-- Applies what was scheduled for the period's end: a downgrade, fewer seats, cancelled add-ons.
local function apply_scheduled(a)
  for _, name in ipairs(SUB_TERMS) do
    if a.nxt[name] then
      set_field(a, 's', name, a.nxt[name])
      set_field(a, 'n', name, nil)
    end
  end
  set_field(a, 'n', 'at', nil)
  local kept = {}
  for _, ad in ipairs(decode_addons(a.sub.ad)) do
    if ad.nu > 0 then
      ad.units = ad.nu
      kept[#kept + 1] = ad
    end
  end
  set_field(a, 's', 'ad', encode_addons(kept))
end

-- Starts the period holding now: its dates, and its credits when the subscription is active.
local function start_period(a)
  local start_ms, end_ms, k = period_containing(tonumber(a.sub.anc), a.sub.cad, a.now)
  set_field(a, 'p', 's', int(start_ms))
  set_field(a, 'p', 'e', int(end_ms))
  set_field(a, 'p', 'u', '0')
  set_field(a, 'p', 'w', nil)
  set_field(a, 'p', 'dep', nil)
  if a.sub.st == 'active' then grant_period_credits(a, end_ms) end
  return start_ms, end_ms, k
end

-- Rolls the period forward when it has ended: exactly once per script, to the period holding now, however many
-- were missed (an account untouched for three months resets once). Its buckets have already expired (they end
-- with the period), so what they had left is recorded as expired before the new period's credits arrive.
local function roll_period(a)
  local s = a.sub
  if not s.st or s.st == 'ended' then return end
  local ended_at = tonumber(a.per.e)
  if not ended_at or a.now < ended_at then return end
  if a.nxt['end'] == '1' then
    end_subscription(a, ended_at, 'period_end')
    return
  end
  local was_trial = s.st == 'trialing'
  if was_trial then
    set_field(a, 's', 'st', 'active')
    set_field(a, 's', 'tend', nil)
  end
  apply_scheduled(a)
  local _, _, k_ended = period_containing(tonumber(s.anc), s.cad, ended_at)
  local start_ms, end_ms, k = start_period(a)
  log_entry(a, { 'op', 'period', 't', int(start_ms), 'end', int(end_ms), 'plan', s.plan, 'from', int(ended_at),
    'missed', int(math.max(0, k - k_ended)), 'after_trial', was_trial and '1' or '0' })
  emit(a, 'period_reset', { 'plan', s.plan, 'period_start', int(start_ms), 'period_end', int(end_ms),
    'missed', int(math.max(0, k - k_ended)), 'period_credits', int(period_credits(a)) })
end
