-- fail.lua: an attempt ended without success (worker fail_job, or job timeout).
-- Retries after a back-off through the delayed set while attempts <= max_retries.
-- KEYS[1] job  KEYS[2] claims  KEYS[3] running  KEYS[4] worker_jobs  KEYS[5] delayed
-- KEYS[6] finished  KEYS[7] counts  KEYS[8] stats  KEYS[9] events
-- ARGV[1] claim token  ARGV[2] error  ARGV[3] error_details JSON ('' for none)
-- ARGV[4] retry wanted (1|0)  ARGV[5] now ms  ARGV[6] event stream max length  ARGV[7] job id
-- ARGV[8] new status ('failed'|'timeout')  ARGV[9..] retry delays in seconds (last repeats)
-- Usage (with KEYS[10] the hour's usage hash): the last two ARGV
--   are the retention s and the worker's GPUs, after the retry delays
-- Returns {'OK', retry_scheduled (1|0), retry delay s, attempts}
--       | {'NOTFOUND'} | {'STALE', current status}.
--! include sums
--! include usage
--! include held
local usage = KEYS[10] ~= nil
local f = redis.call('HMGET', KEYS[1], 'status', 'claim_token', 'worker_id', 'type',
  'customer_id', 'priority', 'max_retries', 'created_at', 'assigned_at', 'started_at')
local st = f[1]
if not st then return {'NOTFOUND'} end
if f[2] ~= ARGV[1] then return {'STALE', st} end
if st ~= 'assigned' and st ~= 'accepted' and st ~= 'in_progress' then return {'STALE', st} end
local now = tonumber(ARGV[5])
local id = ARGV[7]
local new = ARGV[8]
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HDEL', KEYS[1], 'handbacks')
local will_retry = ARGV[4] == '1' and attempts <= tonumber(f[7])
local delay = 0
redis.call('HSET', KEYS[1], 'status', new, 'error', ARGV[2], 'completed_at', now)
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'error_details', ARGV[3])
else
  redis.call('HDEL', KEYS[1], 'error_details')
end
redis.call('HDEL', KEYS[1], 'claim_token')
redis.call('ZREM', KEYS[2], id)
redis.call('ZREM', KEYS[3], id)
redis.call('SREM', KEYS[4], id)
if will_retry then
  local n = #ARGV - 8
  if usage then n = n - 2 end
  delay = tonumber(ARGV[8 + math.min(attempts, n)])
  local due = now + math.floor(delay * 1000)
  redis.call('HSET', KEYS[1], 'retry_at', due)
  redis.call('ZADD', KEYS[5], due, id)
else
  redis.call('HDEL', KEYS[1], 'retry_at')
  redis.call('ZADD', KEYS[6], now, id)
  redis.call('HINCRBY', KEYS[8], 'failed_total', 1)
end
redis.call('HINCRBY', KEYS[7], st, -1)
redis.call('HINCRBY', KEYS[7], new, 1)
held(KEYS[7], f[5], -1)
if usage then
  -- Every attempt's run time is usage; the job counts by status once it is final.
  local assigned = tonumber(f[9]) or now
  local started = tonumber(f[10]) or assigned
  local wait = nil
  if not will_retry then wait = (assigned - (tonumber(f[8]) or assigned)) / 1000 end
  add_usage(KEYS[10], KEYS[8], ARGV[#ARGV - 1], f[5], (not will_retry) and new or nil,
    (now - started) / 1000, tonumber(ARGV[#ARGV]) or 1, wait)
end
local ev = {job_id = id, status = new, previous_status = st, error = ARGV[2],
            will_retry = will_retry, attempts = attempts, worker_id = f[3] or nil, job_type = f[4],
            customer_id = f[5] or nil, priority = tonumber(f[6])}
if will_retry then ev.retry_delay = delay end
redis.call('XADD', KEYS[9], 'MAXLEN', '~', ARGV[6], '*', 'type', 'job_failed', 'data',
  cjson.encode(ev))
return {'OK', will_retry and 1 or 0, tostring(delay), attempts}
