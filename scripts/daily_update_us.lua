-- daily_update_us: import new US bars from data/incoming into the primary, then sync them to
-- every backup. Each CSV is data/<incoming>/<symbol>_<interval>.csv with the columns
-- time,open,high,low,close,volume. Only bars at or after the primary's newest bar are written
-- (the newest bar is rewritten in case it changed), so a second run imports nothing new.

local function import(dir, symbol, interval)
  local file = dir .. "/" .. symbol .. "_" .. interval .. ".csv"
  if not dms.csv.exists(file) then
    dms.log.warn("no incoming file", file)
    return 0
  end
  local newest = dms.primary.newest(symbol, interval)
  local points = {}
  for _, row in ipairs(dms.csv.read(file)) do
    local t = dms.time.parse(row.time)
    if newest == nil or t >= newest then
      points[#points + 1] = {
        symbol = symbol,
        interval = interval,
        time = t,
        fields = {
          open = dms.float(tonumber(row.open)),
          high = dms.float(tonumber(row.high)),
          low = dms.float(tonumber(row.low)),
          close = dms.float(tonumber(row.close)),
          volume = math.tointeger(tonumber(row.volume)),
        },
      }
    end
  end
  if #points > 0 then
    dms.primary.write(points)
  end
  return #points
end

function run(ctx)
  local p = ctx.params
  local imported = 0
  for _, symbol in ipairs(p.symbols) do
    for _, interval in ipairs(p.intervals) do
      imported = imported + import(p.incoming, symbol, interval)
    end
  end
  dms.log.info("imported", imported, "bars into the primary")
  local report = dms.sync { symbols = p.symbols, intervals = p.intervals }
  dms.log.info("synced", report.records, "points,", report.failed, "series failed")
end

function on_failure(ctx, err)
  dms.log.error("daily_update_us failed:", err)
end
