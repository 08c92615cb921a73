-- daily_update_us: import new US bars from data/incoming into the primary, then sync them to
-- every backup. Each CSV is data/<incoming>/<symbol>_<interval>.csv with the columns
-- time,open,high,low,close,volume. Only bars at or after the primary's newest bar are written
-- (the newest bar is rewritten in case it changed), so a second run imports nothing new.
-- dms.primary.import_csv streams each file into the primary in batches, so a file of any size
-- is imported within the script's memory limit.

local function import(dir, symbol, interval)
  local file = dir .. "/" .. symbol .. "_" .. interval .. ".csv"
  if not dms.csv.exists(file) then
    dms.log.warn("no incoming file", file)
    return 0
  end
  -- dms streams the file into the primary in batches: no row passes through Lua.
  local report = dms.primary.import_csv {
    file = file,
    symbol = symbol,
    interval = interval,
    since = dms.primary.newest(symbol, interval),
    float = { "open", "high", "low", "close" },
    int = "volume",
  }
  return report.written
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
