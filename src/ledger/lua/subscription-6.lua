--[[
  Reads or changes an account's subscription (includes/subscription.lua describes the fields). The service
  resolves the plan from the catalog and validates everything first; this script decides, atomically, what the
  change does to the current period.

  KEYS[1] account hash   KEYS[2] holds zset   KEYS[3] ledger stream   KEYS[4] sweep index zset   KEYS[5] members hash
  KEYS[6] events stream of the account's slot
  ARGV[1] now ms ('' = Redis clock)   ARGV[2] account id   ARGV[3] ledger max length   ARGV[4] op:
    'get'
    'set'           ARGV[5] plan id  ARGV[6] cadence  ARGV[7] seats ('' = those in force, 1 for a new one)
                    ARGV[8] credits per period
                    ARGV[9] credits per seat  ARGV[10] unlimited '1'|'0'  ARGV[11] member cap (0 = none)
                    ARGV[12] add-ons "<id>,<units>,<credits per unit>,<per seat 0|1>,<units>;..." (units > 0 only)
                    ARGV[13] status: active | trialing | past_due   ARGV[14] anchor ms ('' = keep, or now)
                    ARGV[15] trial credits   ARGV[16] trial length ms
                    ARGV[17] low-credit warnings, percentages of the period's credits ('20,5'; '' = none)
    'cancel_addon'  ARGV[5] add-on id
    'end'           ARGV[5] 'now' | 'period_end'

  Rules of 'set' on a live subscription, for the current period:
    - More allowance (a bigger plan, more seats, unlimited): at once. The allowance bucket grows by the
      difference, so this period gives exactly the new plan's allowance in total: what was used stays used, the
      rest is the new allowance minus it (never more than the new plan gives, nothing taken back).
    - Less allowance (a smaller plan, fewer seats, unlimited to limited): at the next period; nothing changes now.
    - More add-on units: their credits at once. Fewer (or none): at the next period (what was bought stays).
    - Another cadence or anchor: the current period ends now (the plan's buckets expire), a new one starts.
    - The member cap and active <-> past_due: at once. A past_due subscription gets no new credits.
  Re-stating the current terms cancels a scheduled change (and a scheduled end); stating exactly what is in force
  changes nothing.

  Returns
    { 0, outcome, view }   changed (outcome: started, activated, restarted, changed, scheduled, updated,
                           addon_cancelled, ended, end_scheduled)
    { 1, 'unchanged', view }   nothing to change (a repeat)
    { -2 }                 no subscription (or, for cancel_addon, no such add-on on it)
    { -10, field, message }    a change the current state does not allow
  view: flat list of name, value (s.*, n.*, p.* fields, bucket totals, now)
]]
--- @include "includes/account"

local now = clock(ARGV[1])
local a = load_account(KEYS[1], now, ARGV[2], KEYS[2], KEYS[4], KEYS[3], tonumber(ARGV[3]), KEYS[5], KEYS[6])
local op = ARGV[4]
touch(a)

local function view()
  local out = {}
  local function put(k, v)
    out[#out + 1] = k
    out[#out + 1] = v
  end
  for k, v in pairs(a.sub) do put('s.' .. k, v) end
  for k, v in pairs(a.nxt) do put('n.' .. k, v) end
  for k, v in pairs(a.per) do put('p.' .. k, v) end
  for kind, v in pairs(period_buckets(a)) do
    put(kind .. '.g', int(v.g))
    put(kind .. '.r', int(v.r))
  end
  put('unlimited', unlimited(a) and '1' or '0')
  put('now', int(now))
  return out
end

local function finish(outcome)
  if has_changes(a) then save_account(a) end
  if outcome == 'unchanged' then return { 1, outcome, view() } end
  return { 0, outcome, view() }
end

if op == 'get' then
  if not a.sub.st then
    if has_changes(a) then save_account(a) end
    return { -2 }
  end
  return finish('get')
end

local s = a.sub

if op == 'cancel_addon' then
  if not s.st or s.st == 'ended' then return { -2 } end
  local list = decode_addons(s.ad)
  for _, ad in ipairs(list) do
    if ad.id == ARGV[5] then
      if ad.nu == 0 then return finish('unchanged') end
      ad.nu = 0
      set_field(a, 's', 'ad', encode_addons(list))
      log_entry(a, { 'op', 'addon_cancel', 't', int(now), 'addon', ad.id, 'units', int(ad.units),
        'until', a.per.e or '' })
      return finish('addon_cancelled')
    end
  end
  return { -2 }
end

if op == 'end' then
  if not s.st then return { -2 } end
  if s.st == 'ended' then return finish('unchanged') end
  if ARGV[5] == 'now' then
    close_period_buckets(a)
    end_subscription(a, now, 'ended')
    return finish('ended')
  end
  if not set_field(a, 'n', 'end', '1') then return finish('unchanged') end
  log_entry(a, { 'op', 'subscription_end_scheduled', 't', int(now), 'plan', s.plan, 'at', a.per.e or '' })
  return finish('end_scheduled')
end

if op ~= 'set' then
  return redis.error_reply('subscription: unknown op ' .. tostring(op))
end

local want = { plan = ARGV[5], seats = ARGV[7], cr = ARGV[8], cps = ARGV[9], unl = ARGV[10] }
if want.seats == '' then want.seats = (s.st and s.st ~= 'ended') and s.seats or '1' end
local cadence, cap, status, anchor_arg = ARGV[6], ARGV[11], ARGV[13], ARGV[14]
local warn = ARGV[17]
local trial_credits, trial_ms = tonumber(ARGV[15]), tonumber(ARGV[16])
local want_ad = decode_addons(ARGV[12])

local function set_terms(t)
  local changed = false
  for _, name in ipairs(SUB_TERMS) do
    if set_field(a, 's', name, t[name]) then changed = true end
  end
  return changed
end

local function clear_scheduled_terms()
  local changed = false
  for _, name in ipairs(SUB_TERMS) do
    if set_field(a, 'n', name, nil) then changed = true end
  end
  if changed then set_field(a, 'n', 'at', nil) end
  return changed
end

local function log_change(outcome)
  log_entry(a, { 'op', 'subscription', 't', int(now), 'outcome', outcome, 'plan', s.plan, 'seats', s.seats,
    'status', s.st, 'cadence', s.cad, 'anchor', s.anc, 'period_start', a.per.s or '', 'period_end', a.per.e or '' })
end

-- A brand-new subscription (or one after an ended one).
if not s.st or s.st == 'ended' then
  for name in pairs(a.nxt) do set_field(a, 'n', name, nil) end
  set_terms(want)
  set_field(a, 's', 'cad', cadence)
  set_field(a, 's', 'cap', cap)
  set_field(a, 's', 'warn', warn)
  set_field(a, 's', 'ad', encode_addons(want_ad))
  set_field(a, 's', 'since', int(now))
  set_field(a, 's', 'ended', nil)
  if status == 'trialing' then
    local tend = now + trial_ms
    set_field(a, 's', 'st', 'trialing')
    set_field(a, 's', 'tend', int(tend))
    set_field(a, 's', 'anc', anchor_arg ~= '' and anchor_arg or int(tend))
    set_field(a, 'p', 's', int(now))
    set_field(a, 'p', 'e', int(tend))
    set_field(a, 'p', 'u', '0')
    if trial_credits > 0 then new_bucket(a, 'trial', trial_credits, tend, '|trial', false) end
  else
    set_field(a, 's', 'st', status)
    set_field(a, 's', 'anc', anchor_arg ~= '' and anchor_arg or int(now))
    start_period(a)
  end
  log_change('started')
  return finish('started')
end

if status == 'trialing' and s.st ~= 'trialing' then
  return { -10, 'status', 'a trial only starts a new subscription; this one is ' .. s.st }
end

local outcome = nil
local function note(o)
  if not outcome then outcome = o end
end

if set_field(a, 's', 'cap', cap) then note('updated') end
if set_field(a, 's', 'warn', warn) then note('updated') end
-- Setting the subscription again takes back an end scheduled for the period's end.
if set_field(a, 'n', 'end', nil) then note('changed') end

if s.st == 'trialing' then
  -- While trialing the terms are only recorded: the first period starts when the trial ends (or now, below).
  if set_terms(want) then note('updated') end
  if clear_scheduled_terms() then note('updated') end
  if set_field(a, 's', 'cad', cadence) then note('updated') end
  if anchor_arg ~= '' and set_field(a, 's', 'anc', anchor_arg) then note('updated') end
  local list = {}
  for _, ad in ipairs(want_ad) do list[#list + 1] = ad end
  if set_field(a, 's', 'ad', encode_addons(list)) then note('updated') end
  if status ~= 'trialing' then
    local trial = find_bucket(a, '|trial')
    if trial then expire_bucket(a, trial, now) end
    set_field(a, 's', 'st', status)
    set_field(a, 's', 'tend', nil)
    start_period(a)
    outcome = 'activated'
  end
elseif (anchor_arg ~= '' and anchor_arg ~= s.anc) or cadence ~= s.cad then
  -- Another billing cycle: this period ends now and a new one starts with the new terms.
  close_period_buckets(a)
  for name in pairs(a.nxt) do set_field(a, 'n', name, nil) end
  set_terms(want)
  set_field(a, 's', 'cad', cadence)
  set_field(a, 's', 'anc', anchor_arg ~= '' and anchor_arg or int(now))
  set_field(a, 's', 'ad', encode_addons(want_ad))
  set_field(a, 's', 'st', status)
  start_period(a)
  outcome = 'restarted'
else
  local active = s.st == 'active'
  local seats_before = tonumber(s.seats)
  local differs = false
  for _, name in ipairs(SUB_TERMS) do
    if s[name] ~= want[name] then differs = true end
  end
  if not differs then
    if clear_scheduled_terms() then note('changed') end
  else
    local before, after = allowance_of(s), allowance_of(want)
    if after == -1 or (before ~= -1 and after >= before) then
      set_terms(want)
      clear_scheduled_terms()
      if active then
        local b = find_bucket(a, '|allowance')
        if after == -1 then
          if b then
            b.u = 1
            a.set['b' .. b.id .. '.u'] = '1'
          else
            new_bucket(a, 'allowance', 0, tonumber(a.per.e), '|allowance', true)
          end
        elseif b then
          grow_bucket(a, b, after - before, 'plan_change')
        elseif after > 0 then
          new_bucket(a, 'allowance', after, tonumber(a.per.e), '|allowance', false)
        end
        -- Per-seat add-ons follow added seats at once too.
        local seats_after = tonumber(want.seats)
        if seats_after > seats_before then
          for _, ad in ipairs(decode_addons(s.ad)) do
            if ad.ps and ad.units > 0 then
              local extra = addon_credits(ad, ad.units, seats_after) - addon_credits(ad, ad.units, seats_before)
              local ab = find_bucket(a, '|addon:' .. ad.id)
              if ab then grow_bucket(a, ab, extra, 'seats') else
                new_bucket(a, 'addon', extra, tonumber(a.per.e), '|addon:' .. ad.id, false)
              end
            end
          end
        end
      end
      outcome = 'changed'
    else
      local scheduled = false
      for _, name in ipairs(SUB_TERMS) do
        if set_field(a, 'n', name, want[name]) then scheduled = true end
      end
      if scheduled then
        set_field(a, 'n', 'at', int(now))
        note('scheduled')
      end
    end
  end

  -- Add-ons: more units at once, fewer at the next period.
  local seats_now = tonumber(s.seats)
  local list, by_id = decode_addons(s.ad), {}
  for i, ad in ipairs(list) do by_id[ad.id] = i end
  for _, w in ipairs(want_ad) do
    local i = by_id[w.id]
    local cur = i and list[i]
    if not cur then
      cur = { id = w.id, units = 0, cpu = w.cpu, ps = w.ps, nu = 0 }
      list[#list + 1] = cur
      by_id[w.id] = #list
    end
    if w.units > cur.units then
      local extra = addon_credits(w, w.units - cur.units, seats_now)
      if active and extra > 0 then
        local ab = find_bucket(a, '|addon:' .. w.id)
        if ab then grow_bucket(a, ab, extra, 'addon') else
          new_bucket(a, 'addon', extra, tonumber(a.per.e), '|addon:' .. w.id, false)
        end
      end
      cur.units = w.units
    end
    cur.nu, cur.cpu, cur.ps = w.units, w.cpu, w.ps
  end
  local wanted = {}
  for _, w in ipairs(want_ad) do wanted[w.id] = true end
  for _, ad in ipairs(list) do
    if not wanted[ad.id] then ad.nu = 0 end
  end
  local kept = {}
  for _, ad in ipairs(list) do
    if ad.units > 0 or ad.nu > 0 then kept[#kept + 1] = ad end
  end
  if set_field(a, 's', 'ad', encode_addons(kept)) then note('changed') end

  if status ~= s.st then
    set_field(a, 's', 'st', status)
    note('updated')
    if status == 'active' and not find_bucket(a, '|allowance') and a.per.e then
      -- Back from past_due in a period that got no credits: this period's credits now, under the terms above.
      grant_period_credits(a, tonumber(a.per.e))
    end
  end
end

if not outcome then return finish('unchanged') end
log_change(outcome)
return finish(outcome)
