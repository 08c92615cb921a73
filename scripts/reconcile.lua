-- Reconciliation owned by a task: compare the last `params.days` days of every series on the
-- primary with each backup (full-field digests, computed by the servers), repair the windows
-- that differ, and log what was found.

function run(ctx)
  local days = (ctx.params and ctx.params.days) or 30
  local report = dms.reconcile{ since = dms.time.now() - dms.time.days(days) }
  for _, b in ipairs(report.backups) do
    dms.log.info(string.format(
      "reconcile %s: %d windows compared, %d differed, %d repaired, %d points rewritten, %d extra",
      b.backup, b.windows, b.differing, b.repaired, b.rewritten, b.extra))
    if b.status ~= "success" then
      error("reconcile of " .. b.backup .. " failed: " .. tostring(b.error))
    end
  end
end
