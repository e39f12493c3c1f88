-- add_usage(...): usage accounting (docs/tenants.md): one hash per hour, fields "<customer>|<what>".
-- GPU-seconds also add up, for all time, in the stats hash ("gpu_seconds|<customer>").
local function add_usage(hour_key, stats_key, retention, cust, status, run_s, gpus, wait_s)
  local c = cust or ''
  if status then redis.call('HINCRBY', hour_key, c .. '|jobs:' .. status, 1) end
  if run_s and run_s > 0 then
    redis.call('HINCRBYFLOAT', hour_key, c .. '|run', run_s)
    redis.call('HINCRBYFLOAT', hour_key, c .. '|gpu', run_s * gpus)
    redis.call('HINCRBYFLOAT', stats_key, 'gpu_seconds|' .. c, run_s * gpus)
  end
  if wait_s and wait_s > 0 then redis.call('HINCRBYFLOAT', hour_key, c .. '|wait', wait_s) end
  redis.call('EXPIRE', hour_key, retention)
end
