-- complete.lua: workers holding jobs report success (-> completed, final), one or more
-- jobs per call (the reports that arrived together).
-- KEYS[1] claims  KEYS[2] running  KEYS[3] finished  KEYS[4] counts  KEYS[5] stats
-- KEYS[6] events
-- then per job i: KEYS[5 + 2i] job, KEYS[6 + 2i] the holder's worker_jobs
-- ARGV[1] now ms  ARGV[2] event stream max length
-- then per job i (from 3 + 4(i-1)): claim token, result JSON, processing time s ('' if
--   unknown; a negative, non-finite or absurd one, over 1e9 s, counts as unknown, so
--   no sum of them can overflow), job id
-- Usage (when KEYS has one more at the end): KEYS[7 + 2n] the hour's usage hash;
--   ARGV[3 + 4n] its retention s, then per job i: its worker's GPUs
-- Returns per job: {'OK'} | {'NOTFOUND'} | {'STALE', current status}. The completed jobs'
-- events share one stream entry (data: an array when there are several), and their
-- counts, stats and usage are summed first: one command per counter for the whole call.
--! include sums
--! include held
local now = tonumber(ARGV[1])
local n = math.floor((#KEYS - 6) / 2)
local usage = #KEYS > 6 + 2 * n
--! include usage
local replies = {}
local events = {}
local sums = nil
if n > 1 then sums = new_sums() end
for i = 1, n do
  local job_key, wjobs_key = KEYS[5 + 2 * i], KEYS[6 + 2 * i]
  local a = 3 + 4 * (i - 1)
  local token, result, id = ARGV[a], ARGV[a + 1], ARGV[a + 3]
  -- Checked before any write: HINCRBYFLOAT refuses a non-finite number, and an error
  -- after the status was written would leave the job completed without its event.
  local given = tonumber(ARGV[a + 2])
  if given and (given ~= given or given < 0 or given > 1e9) then given = nil end
  local f = redis.call('HMGET', job_key, 'status', 'claim_token', 'worker_id', 'type',
    'customer_id', 'priority', 'attempts', 'created_at', 'assigned_at', 'started_at')
  local st = f[1]
  if not st then
    replies[i] = {'NOTFOUND'}
  elseif f[2] ~= token or (st ~= 'assigned' and st ~= 'accepted' and st ~= 'in_progress') then
    replies[i] = {'STALE', st}
  else
    redis.call('HSET', job_key, 'status', 'completed', 'completed_at', now, 'progress', 100,
      'result', result)
    redis.call('HDEL', job_key, 'claim_token', 'error', 'error_details', 'retry_at')
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
    redis.call('SREM', wjobs_key, id)
    redis.call('ZADD', KEYS[3], now, id)
    bump(sums, KEYS[4], st, -1)
    bump(sums, KEYS[4], 'completed', 1)
    held(KEYS[4], f[5], -1, sums)
    local assigned = tonumber(f[9]) or now
    local started = tonumber(f[10]) or assigned
    local ptime = given or ((now - started) / 1000)
    local wait = (assigned - (tonumber(f[8]) or assigned)) / 1000
    bump(sums, KEYS[5], 'completed_total', 1)
    bump(sums, KEYS[5], 'run_seconds_sum', ptime, 'float')
    bump(sums, KEYS[5], 'wait_seconds_sum', wait, 'float')
    if usage then
      add_usage(KEYS[7 + 2 * n], KEYS[5], ARGV[3 + 4 * n], f[5], 'completed', ptime,
        tonumber(ARGV[3 + 4 * n + i]) or 1, wait, sums)
    end
    -- Built as text so a large result is copied, never decoded and re-encoded.
    events[#events + 1] = '{"job_id":' .. cjson.encode(id) .. ',"status":"completed"'
      .. ',"previous_status":' .. cjson.encode(st)
      .. ',"worker_id":' .. cjson.encode(f[3]) .. ',"processing_time":' .. cjson.encode(ptime)
      .. ',"job_type":' .. cjson.encode(f[4]) .. ',"customer_id":' .. cjson.encode(f[5] or cjson.null)
      .. ',"priority":' .. (f[6] or '0') .. ',"attempts":' .. (f[7] or '0') .. ',"progress":100'
      .. ',"result":' .. result .. '}'
    replies[i] = {'OK'}
  end
end
if #events > 0 then
  if sums then
    write_sums(sums)
    if usage then redis.call('EXPIRE', KEYS[7 + 2 * n], ARGV[3 + 4 * n]) end
  end
  local data = events[1]
  if #events > 1 then data = '[' .. table.concat(events, ',') .. ']' end
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[2], '*', 'type', 'job_completed', 'data', data)
end
return replies
