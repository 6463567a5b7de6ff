--[[
  Usage aggregates (included after includes/account by the scripts that charge or refund a charge; never run alone).
  What GetUsageSummary reads: per UTC day and per (operation, model), kept apart from the ledger so they survive its
  trimming, and written in the same script as the charge or refund they count.

  The usage hash (one per account, under the account's hash tag) holds:
    <day>                 the day's groups ("YYYY-MM-DD"): the concatenated group codes of every (operation, model)
                          that had usage that day, so a reader asks for exactly the fields it needs (HMGET, no scan)
    <day>/<group code>    that group's totals that day: "generations,credits,refunded,input_tokens,output_tokens"
                          (credits net of refunds: negative on a day that refunded more than it charged)
    days                  the days present, comma-separated: what the retention walks when a day rolls
  A group code is the operation then the model, each written as <length>:<text> ("4:chat6:gpt-4o"; "0:0:" for a
  reservation made with amount_micros), so no operation or model string, whatever it contains, can make two
  groups share a field or a day's list ambiguous.

  Retention: the first write of a new day drops the days older than keep_days (0 = keep every day), so the hash
  holds at most keep_days days of groups. A refund counts on the day it happens (credits down, refunded up; the
  generation and its tokens stay on the day of the charge): a day's numbers then say what happened that day, and
  no lookup of the charge's day is needed.
]]

local USAGE_DAY_MS = 86400000

local function usage_code(s)
  return #s .. ':' .. s
end

-- The last day asked for, kept: nearly every call asks for today.
local usage_day_last = { n = false, s = '' }
local function usage_day(ms)
  local n = math.floor(ms / USAGE_DAY_MS)
  if n == usage_day_last.n then return usage_day_last.s end
  local y, m, d = period_civil_from_days(n)
  local s = string.format('%04d-%02d-%02d', y, m, d)
  usage_day_last.n, usage_day_last.s = n, s
  return s
end

-- The group codes of a day's list.
local function usage_groups(list)
  local out, pos = {}, 1
  while pos <= #list do
    local start = pos
    for _ = 1, 2 do
      local n = string.match(list, '^(%d+):', pos)
      if not n then return out end
      pos = pos + #n + 1 + tonumber(n)
    end
    out[#out + 1] = string.sub(list, start, pos - 1)
  end
  return out
end

-- The first write of a day: days older than keep_days go, with their groups; today joins the list.
local function usage_roll(key, now, keep_days, day)
  local cutoff = keep_days > 0 and usage_day(now - (keep_days - 1) * USAGE_DAY_MS) or nil
  local kept = {}
  for d in string.gmatch(redis.call('HGET', key, 'days') or '', '[^,]+') do
    if cutoff and d < cutoff then
      local del = { d }
      for _, g in ipairs(usage_groups(redis.call('HGET', key, d) or '')) do del[#del + 1] = d .. '/' .. g end
      redis.call('HDEL', key, unpack(del))
    elseif d ~= day then
      kept[#kept + 1] = d
    end
  end
  kept[#kept + 1] = day
  redis.call('HSET', key, 'days', table.concat(kept, ','))
end

-- Adds to today's totals of (op, model): generations, credits (negative for a refund), refunded, tokens.
local function usage_add(key, now, keep_days, op, model, gens, credits, refunded, input_tokens, output_tokens)
  local day = usage_day(now)
  local code = usage_code(op) .. usage_code(model)
  local field = day .. '/' .. code
  local cur = redis.call('HMGET', key, day, field)
  local g, c, r, i, o = 0, 0, 0, 0, 0
  local set = {}
  if cur[2] then
    local vg, vc, vr, vi, vo = string.match(cur[2], '^(%d+),(-?%d+),(%d+),(%d+),(%d+)$')
    if vg then
      g, c, r, i, o = vg + 0, vc + 0, vr + 0, vi + 0, vo + 0
    else
      local v = {}
      for n in string.gmatch(cur[2], '-?%d+') do v[#v + 1] = tonumber(n) end
      g, c, r, i, o = v[1] or 0, v[2] or 0, v[3] or 0, v[4] or 0, v[5] or 0
    end
  else
    -- This group's first usage today: listed in the day's field (and a new day rolls the retention).
    if not cur[1] then usage_roll(key, now, keep_days, day) end
    set[1], set[2] = day, (cur[1] or '') .. code
  end
  set[#set + 1] = field
  set[#set + 1] = string.format('%d,%d,%d,%d,%d', g + gens, c + credits, r + refunded, i + input_tokens,
    o + output_tokens)
  redis.call('HSET', key, unpack(set))
end

-- Input and output tokens of a charge's quantities ("in,cached,out,reasoning,images,video_seconds,units",
-- trailing zeros left out; '' when the charge was an amount).
local function usage_tokens(qty)
  if qty == '' then return 0, 0 end
  local v = {}
  for n in string.gmatch(qty, '%d+') do v[#v + 1] = tonumber(n) end
  return v[1] or 0, v[3] or 0
end
