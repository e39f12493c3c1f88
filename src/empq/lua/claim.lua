-- claim.lua: hand one queued job to a worker, fenced by a fresh claim token.
-- KEYS[1] job   KEYS[2] sig_queue   KEYS[3] queued   KEYS[4] claims   KEYS[5] running
-- KEYS[6] worker_jobs   KEYS[7] counts   KEYS[8] events
-- ARGV[1] member (order key)  ARGV[2] job id  ARGV[3] worker id  ARGV[4] claim token
-- ARGV[5] now ms  ARGV[6] claim deadline ms  ARGV[7] event stream max length
-- Returns false when another worker got the member first, else the job hash (HGETALL).
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then
  return false
end
redis.call('ZREM', KEYS[3], ARGV[1])
local now = tonumber(ARGV[5])
local timeout_ms = tonumber(redis.call('HGET', KEYS[1], 'timeout_ms')) or 1800000
redis.call('HSET', KEYS[1], 'status', 'assigned', 'worker_id', ARGV[3], 'claim_token', ARGV[4],
  'assigned_at', now, 'progress', 0)
redis.call('HDEL', KEYS[1], 'message', 'started_at', 'retry_at')
redis.call('ZADD', KEYS[4], tonumber(ARGV[6]), ARGV[2])
redis.call('ZADD', KEYS[5], now + timeout_ms, ARGV[2])
redis.call('SADD', KEYS[6], ARGV[2])
redis.call('HINCRBY', KEYS[7], 'queued', -1)
redis.call('HINCRBY', KEYS[7], 'assigned', 1)
local job = redis.call('HGETALL', KEYS[1])
local f = {}
for i = 1, #job, 2 do f[job[i]] = job[i + 1] end
redis.call('XADD', KEYS[8], 'MAXLEN', '~', ARGV[7], '*', 'type', 'job_update', 'data',
  cjson.encode({job_id = ARGV[2], status = 'assigned', previous_status = 'queued', progress = 0,
                worker_id = ARGV[3], job_type = f.type, customer_id = f.customer_id,
                priority = tonumber(f.priority), attempts = tonumber(f.attempts)}))
return job
