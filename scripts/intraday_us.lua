-- intraday_us: every hour of the US session, sync the 1m bars that the market-data feeder
-- wrote to the primary since the last run. It only chooses series; dms does the copying.

function symbols(ctx)
  -- Every US symbol the primary holds 1m bars for, or the list given in params.
  if ctx.params.symbols then
    return ctx.params.symbols
  end
  local out = {}
  for _, s in ipairs(dms.primary.symbols("1m")) do
    if string.sub(s, 1, 3) == "US." then
      out[#out + 1] = s
    end
  end
  return out
end

function intervals(ctx)
  return { "1m" }
end

function on_success(ctx, report)
  if report.records > 0 then
    dms.log.info("intraday sync copied", report.records, "points")
  end
end
