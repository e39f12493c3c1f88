-- retry.lua: an operator's retry of a failed, timed-out or cancelled job: queued again at
-- its original place with a fresh retry budget (attempts back to 0).
-- KEYS[1] job  KEYS[2] sig_queue  KEYS[3] queued  KEYS[4] delayed  KEYS[5] finished
-- KEYS[6] counts  KEYS[7] sigs  KEYS[8] sigs_version  KEYS[9] events
-- ARGV[1] now ms  ARGV[2] event stream max length  ARGV[3] job id
-- ARGV[4] a fresh registry version
-- Returns {'OK', previous status} | {'NOTFOUND'} | {'FINAL', status}.
local f = redis.call('HMGET', KEYS[1], 'status', 'type', 'customer_id', 'priority', 'order',
  'sig', 'spec')
local st = f[1]
if not st then return {'NOTFOUND'} end
if st ~= 'failed' and st ~= 'timeout' and st ~= 'cancelled' then return {'FINAL', st} end
local id = ARGV[3]
redis.call('ZREM', KEYS[4], id)
redis.call('ZREM', KEYS[5], id)
redis.call('HSET', KEYS[1], 'status', 'queued', 'attempts', 0, 'progress', 0)
redis.call('HDEL', KEYS[1], 'error', 'error_details', 'result', 'worker_id', 'completed_at',
  'retry_at', 'message', 'assigned_at', 'started_at', 'claim_token')
redis.call('ZADD', KEYS[2], 0, f[5])
redis.call('ZADD', KEYS[3], 0, f[5])
if redis.call('HSETNX', KEYS[7], f[6], f[7]) == 1 then redis.call('SET', KEYS[8], ARGV[4]) end
redis.call('HINCRBY', KEYS[6], st, -1)
redis.call('HINCRBY', KEYS[6], 'queued', 1)
redis.call('HINCRBY', KEYS[6], 'enqueued', 1)
redis.call('XADD', KEYS[9], 'MAXLEN', '~', ARGV[2], '*', 'type', 'job_update', 'data',
  cjson.encode({job_id = id, status = 'queued', previous_status = st, progress = 0,
                job_type = f[2], customer_id = f[3] or nil, priority = tonumber(f[4]), attempts = 0,
                signature = f[6]}))
return {'OK', st}
