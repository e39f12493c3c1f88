-- add_usage(...): usage accounting (docs/tenants.md): one hash per hour, fields "<customer>|<what>".
-- GPU-seconds also add up, for all time, in the stats hash ("gpu_seconds|<customer>").
-- Needs sums.lua: with `sums` (new_sums()) the increments are summed there, and the
-- caller writes them and sets the hour's expiry; without, they are written now.
local function add_usage(hour_key, stats_key, retention, cust, status, run_s, gpus, wait_s, sums)
  local c = cust or ''
  if status then bump(sums, hour_key, c .. '|jobs:' .. status, 1) end
  if run_s and run_s > 0 then
    bump(sums, hour_key, c .. '|run', run_s, 'float')
    bump(sums, hour_key, c .. '|gpu', run_s * gpus, 'float')
    bump(sums, stats_key, 'gpu_seconds|' .. c, run_s * gpus, 'float')
  end
  if wait_s and wait_s > 0 then bump(sums, hour_key, c .. '|wait', wait_s, 'float') end
  if sums == nil then redis.call('EXPIRE', hour_key, retention) end
end
