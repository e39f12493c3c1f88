-- promote.lua: a delayed retry whose back-off is over goes back to its place in the queue.
-- KEYS[1] job  KEYS[2] sig_queue  KEYS[3] queued  KEYS[4] delayed  KEYS[5] counts
-- KEYS[6] sigs  KEYS[7] sigs_version  KEYS[8] events
-- ARGV[1] now ms  ARGV[2] event stream max length  ARGV[3] job id
-- ARGV[4] a fresh registry version
-- Returns 1 when promoted, 0 when not due or no longer waiting.
local id = ARGV[3]
local due = redis.call('ZSCORE', KEYS[4], id)
if not due or tonumber(due) > tonumber(ARGV[1]) then return 0 end
redis.call('ZREM', KEYS[4], id)
local f = redis.call('HMGET', KEYS[1], 'status', 'type', 'customer_id', 'priority', 'order',
  'sig', 'spec', 'attempts')
local st = f[1]
if st ~= 'failed' and st ~= 'timeout' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'queued', 'progress', 0)
redis.call('HDEL', KEYS[1], 'retry_at', 'worker_id', 'completed_at', 'assigned_at', 'started_at')
redis.call('ZADD', KEYS[2], 0, f[5])
redis.call('ZADD', KEYS[3], 0, f[5])
if redis.call('HSETNX', KEYS[6], f[6], f[7]) == 1 then redis.call('SET', KEYS[7], ARGV[4]) end
redis.call('HINCRBY', KEYS[5], st, -1)
redis.call('HINCRBY', KEYS[5], 'queued', 1)
redis.call('HINCRBY', KEYS[5], 'enqueued', 1)
redis.call('XADD', KEYS[8], 'MAXLEN', '~', ARGV[2], '*', 'type', 'job_update', 'data',
  cjson.encode({job_id = id, status = 'queued', previous_status = st, progress = 0,
                job_type = f[2], customer_id = f[3] or nil, priority = tonumber(f[4]),
                attempts = tonumber(f[8]), signature = f[6]}))
return 1
