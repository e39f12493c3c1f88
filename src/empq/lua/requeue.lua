-- requeue.lua: take a job back from its worker and put it back at its original place in
-- the queue: counting the attempt when the worker lost it (worker gone, assignment never
-- accepted), or not when the worker handed it back (`release_job`, a graceful
-- `disconnect`, a drain; CONTRACT §9). More than 10 hand-backs in a row count one attempt,
-- so a job that makes every worker give up still ends.
-- KEYS[1] job  KEYS[2] sig_queue  KEYS[3] queued  KEYS[4] claims  KEYS[5] running
-- KEYS[6] worker_jobs  KEYS[7] finished  KEYS[8] counts  KEYS[9] sigs  KEYS[10] sigs_version
-- KEYS[11] stats  KEYS[12] events
-- ARGV[1] claim token the caller saw  ARGV[2] reason  ARGV[3] now ms
-- ARGV[4] event stream max length  ARGV[5] job id  ARGV[6] a fresh registry version
-- ARGV[7] '1': the worker lost the job (the attempt counts); '0': a hand-back
-- Returns {'OK', new status} | {'NOTFOUND'} | {'STALE', current status}.
--! include sums
--! include held
local f = redis.call('HMGET', KEYS[1], 'status', 'claim_token', 'worker_id', 'type',
  'customer_id', 'priority', 'max_retries', 'order', 'sig', 'spec')
local st = f[1]
if not st then return {'NOTFOUND'} end
if f[2] ~= ARGV[1] then return {'STALE', st} end
if st ~= 'assigned' and st ~= 'accepted' and st ~= 'in_progress' then return {'STALE', st} end
local counted = ARGV[7] ~= '0'
if not counted and redis.call('HINCRBY', KEYS[1], 'handbacks', 1) > 10 then
  counted = true
end
local now = tonumber(ARGV[3])
local id = ARGV[5]
local attempts
if counted then
  attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
  redis.call('HDEL', KEYS[1], 'handbacks')
else
  attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
end
redis.call('HDEL', KEYS[1], 'claim_token', 'worker_id', 'started_at', 'message')
redis.call('ZREM', KEYS[4], id)
redis.call('ZREM', KEYS[5], id)
redis.call('SREM', KEYS[6], id)
redis.call('HINCRBY', KEYS[8], st, -1)
held(KEYS[8], f[5], -1)
local ev
if attempts > tonumber(f[7]) then
  redis.call('HSET', KEYS[1], 'status', 'failed', 'error', ARGV[2], 'completed_at', now)
  redis.call('ZADD', KEYS[7], now, id)
  redis.call('HINCRBY', KEYS[8], 'failed', 1)
  redis.call('HINCRBY', KEYS[11], 'failed_total', 1)
  redis.call('XADD', KEYS[12], 'MAXLEN', '~', ARGV[4], '*', 'type', 'job_failed', 'data',
    cjson.encode({job_id = id, status = 'failed', previous_status = st, error = ARGV[2],
                  will_retry = false, attempts = attempts, worker_id = f[3] or nil, job_type = f[4],
                  customer_id = f[5] or nil, priority = tonumber(f[6])}))
  return {'OK', 'failed'}
end
redis.call('HSET', KEYS[1], 'status', 'queued', 'progress', 0, 'error', ARGV[2])
redis.call('ZADD', KEYS[2], 0, f[8])
redis.call('ZADD', KEYS[3], 0, f[8])
if redis.call('HSETNX', KEYS[9], f[9], f[10]) == 1 then redis.call('SET', KEYS[10], ARGV[6]) end
redis.call('HINCRBY', KEYS[8], 'queued', 1)
redis.call('HINCRBY', KEYS[8], 'enqueued', 1)
redis.call('XADD', KEYS[12], 'MAXLEN', '~', ARGV[4], '*', 'type', 'job_update', 'data',
  cjson.encode({job_id = id, status = 'queued', previous_status = st, progress = 0,
                message = ARGV[2], previous_worker_id = f[3] or nil, job_type = f[4],
                customer_id = f[5] or nil, priority = tonumber(f[6]), attempts = attempts,
                signature = f[9]}))
return {'OK', 'queued'}
