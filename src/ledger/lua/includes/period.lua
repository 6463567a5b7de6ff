--[[
  Billing-period arithmetic (included by the loader, never run alone). Pure integer arithmetic on milliseconds
  since the epoch, all in UTC; Redis's Lua has no os.time/os.date. Every value stays below 2^53, so doubles hold
  them exactly, and every division of integers goes through math.floor (negative-safe).

  A period starts on the anchor's day of the month (cadence 'month') or on the anchor's month and day (cadence
  'year'), at the anchor's time of day. An anchor day past the end of a shorter month clamps to its last day and
  comes back (Jan 31 -> Feb 28/29 -> Mar 31; a Feb 29 yearly anchor -> Feb 28 in common years -> Feb 29).
  The same arithmetic lives in src/ledger/period.ts; test/ledger/period.test.ts checks that they agree.
]]

local PERIOD_DAY_MS = 86400000

-- Days since 1970-01-01 of the civil date y-m-d (Howard Hinnant's days_from_civil).
local function period_days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = m > 2 and m - 3 or m + 9
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

-- The civil date (y, m, d) of a day number (Howard Hinnant's civil_from_days).
local function period_civil_from_days(z)
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m, d
end

local function period_days_in_month(y, m)
  if m == 2 then
    if (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0 then return 29 end
    return 28
  end
  if m == 4 or m == 6 or m == 9 or m == 11 then return 30 end
  return 31
end

-- Splits ms into (day number, ms into that day), the second in [0, PERIOD_DAY_MS).
local function period_split(ms)
  local days = math.floor(ms / PERIOD_DAY_MS)
  local tod = ms - days * PERIOD_DAY_MS
  if tod < 0 then
    days, tod = days - 1, tod + PERIOD_DAY_MS
  elseif tod >= PERIOD_DAY_MS then
    days, tod = days + 1, tod - PERIOD_DAY_MS
  end
  return days, tod
end

local function period_months(cadence)
  if cadence == 'month' then return 1 end
  if cadence == 'year' then return 12 end
  error('period: unknown cadence ' .. tostring(cadence))
end

-- The start (ms) of period number k (k = 0 is the anchor itself; k may be negative).
local function period_start_at(anchor_ms, cadence, k)
  local days, tod = period_split(anchor_ms)
  local y, m, d = period_civil_from_days(days)
  local index = y * 12 + (m - 1) + k * period_months(cadence) -- months since year 0
  local ty = math.floor(index / 12)
  local tm = index - ty * 12 + 1
  local td = math.min(d, period_days_in_month(ty, tm))
  return period_days_from_civil(ty, tm, td) * PERIOD_DAY_MS + tod
end

-- The period holding now_ms: start_ms, end_ms (the next period's start), k; start_ms <= now_ms < end_ms, so a
-- now exactly at an end belongs to the next period. Computed directly from the month difference, then stepped
-- back at most once (the start of period k may fall later in now's own month).
local function period_containing(anchor_ms, cadence, now_ms)
  local step = period_months(cadence)
  local ay, am = period_civil_from_days((period_split(anchor_ms)))
  local ny, nm = period_civil_from_days((period_split(now_ms)))
  local diff = (ny * 12 + nm) - (ay * 12 + am)
  local k = math.floor(diff / step)
  local start_ms = period_start_at(anchor_ms, cadence, k)
  if start_ms > now_ms then
    k = k - 1
    return period_start_at(anchor_ms, cadence, k), start_ms, k
  end
  return start_ms, period_start_at(anchor_ms, cadence, k + 1), k
end
