-- cancel.lua: cancel a job wherever it is (queued, delayed retry, or held by a worker).
-- KEYS[1] job  KEYS[2] sig_queue  KEYS[3] queued  KEYS[4] delayed  KEYS[5] claims
-- KEYS[6] running  KEYS[7] worker_jobs  KEYS[8] finished  KEYS[9] counts  KEYS[10] events
-- ARGV[1] reason  ARGV[2] now ms  ARGV[3] event stream max length  ARGV[4] job id
-- ARGV[5] the worker id the caller read ('' for none): KEYS[7] belongs to it
-- Usage (with KEYS[11] the hour's usage hash): ARGV[6] its retention s (a cancelled job
--   counts as cancelled; the run time of an attempt cut off by a cancel is not counted)
-- Returns {'OK', previous status} | {'NOTFOUND'} | {'FINAL', status} | {'RETRY'}.
--! include sums
--! include usage
--! include held
local f = redis.call('HMGET', KEYS[1], 'status', 'worker_id', 'type', 'customer_id',
  'priority', 'attempts', 'order')
local st = f[1]
if not st then return {'NOTFOUND'} end
local id = ARGV[4]
local pending_retry = redis.call('ZSCORE', KEYS[4], id)
if st == 'completed' or st == 'cancelled' or
   ((st == 'failed' or st == 'timeout') and not pending_retry) then
  return {'FINAL', st}
end
if (f[2] or '') ~= ARGV[5] then return {'RETRY'} end
local now = tonumber(ARGV[2])
redis.call('ZREM', KEYS[2], f[7])
redis.call('ZREM', KEYS[3], f[7])
redis.call('ZREM', KEYS[4], id)
redis.call('ZREM', KEYS[5], id)
redis.call('ZREM', KEYS[6], id)
if f[2] then redis.call('SREM', KEYS[7], id) end
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'completed_at', now)
if ARGV[1] ~= '' then redis.call('HSET', KEYS[1], 'message', ARGV[1]) end
redis.call('HDEL', KEYS[1], 'claim_token', 'retry_at')
redis.call('ZADD', KEYS[8], now, id)
redis.call('HINCRBY', KEYS[9], st, -1)
redis.call('HINCRBY', KEYS[9], 'cancelled', 1)
if st == 'assigned' or st == 'accepted' or st == 'in_progress' then held(KEYS[9], f[4], -1) end
if KEYS[11] then add_usage(KEYS[11], nil, ARGV[6], f[4], 'cancelled', nil, 1, nil) end
redis.call('XADD', KEYS[10], 'MAXLEN', '~', ARGV[3], '*', 'type', 'job_update', 'data',
  cjson.encode({job_id = id, status = 'cancelled', previous_status = st, message = ARGV[1],
                worker_id = f[2] or nil, job_type = f[3], customer_id = f[4] or nil,
                priority = tonumber(f[5]), attempts = tonumber(f[6])}))
return {'OK', st}
