-- settle.lua: a worker registers under an id that may still hold jobs (it restarted, or
-- reconnected after its old connection died). Every job the id holds is settled at once:
-- the ones the registration lists as current stay held (same claim tokens); every other
-- goes back to its place in the queue as a lost attempt of a dead worker (counted, as
-- for a crash; failed for good once no retries remain).
-- KEYS[1] the worker's worker_jobs  KEYS[2] queued  KEYS[3] claims  KEYS[4] running
-- KEYS[5] finished  KEYS[6] counts  KEYS[7] sigs  KEYS[8] sigs_version  KEYS[9] stats
-- KEYS[10] events
-- then per job i: KEYS[9 + 2i] job, KEYS[10 + 2i] its signature's queue
-- ARGV[1] worker id  ARGV[2] reason  ARGV[3] now ms  ARGV[4] event stream max length
-- ARGV[5] a fresh registry version  ARGV[6] k: how many ids the registration lists
-- ARGV[7 .. 6 + k] those ids, then per job i: its id (the jobs of KEYS, in order)
-- Returns {'RETRY'} when KEYS do not cover every member of the worker's set (read it
-- again), else {kept ids, requeued ids}.
--! include sums
--! include held
local wjobs = KEYS[1]
local n = (#KEYS - 10) / 2
local wid = ARGV[1]
local now = tonumber(ARGV[3])
local k = tonumber(ARGV[6])
local keep = {}
for i = 1, k do keep[ARGV[6 + i]] = true end
local base = 6 + k
local passed = {}
for i = 1, n do passed[ARGV[base + i]] = true end
for _, member in ipairs(redis.call('SMEMBERS', wjobs)) do
  if not passed[member] then return {'RETRY'} end
end
local kept, requeued = {}, {}
for i = 1, n do
  local job_key, q_key = KEYS[9 + 2 * i], KEYS[10 + 2 * i]
  local id = ARGV[base + i]
  local f = redis.call('HMGET', job_key, 'status', 'worker_id', 'type', 'customer_id',
    'priority', 'max_retries', 'order', 'sig', 'spec')
  local st = f[1]
  if not (st == 'assigned' or st == 'accepted' or st == 'in_progress') or f[2] ~= wid then
    redis.call('SREM', wjobs, id)  -- the set lagged behind a job that ended or moved on
  elseif keep[id] then
    kept[#kept + 1] = id
  else
    local attempts = redis.call('HINCRBY', job_key, 'attempts', 1)
    redis.call('HDEL', job_key, 'handbacks')  -- as requeue.lua: a counted attempt ends a run
    redis.call('HDEL', job_key, 'claim_token', 'worker_id', 'started_at', 'message')
    redis.call('ZREM', KEYS[3], id)
    redis.call('ZREM', KEYS[4], id)
    redis.call('SREM', wjobs, id)
    redis.call('HINCRBY', KEYS[6], st, -1)
    held(KEYS[6], f[4], -1)
    if attempts > tonumber(f[6]) then
      redis.call('HSET', job_key, 'status', 'failed', 'error', ARGV[2], 'completed_at', now)
      redis.call('ZADD', KEYS[5], now, id)
      redis.call('HINCRBY', KEYS[6], 'failed', 1)
      redis.call('HINCRBY', KEYS[9], 'failed_total', 1)
      redis.call('XADD', KEYS[10], 'MAXLEN', '~', ARGV[4], '*', 'type', 'job_failed', 'data',
        cjson.encode({job_id = id, status = 'failed', previous_status = st, error = ARGV[2],
                      will_retry = false, attempts = attempts, worker_id = wid, job_type = f[3],
                      customer_id = f[4] or nil, priority = tonumber(f[5])}))
    else
      redis.call('HSET', job_key, 'status', 'queued', 'progress', 0, 'error', ARGV[2])
      redis.call('ZADD', q_key, 0, f[7])
      redis.call('ZADD', KEYS[2], 0, f[7])
      if redis.call('HSETNX', KEYS[7], f[8], f[9]) == 1 then
        redis.call('SET', KEYS[8], ARGV[5])
      end
      redis.call('HINCRBY', KEYS[6], 'queued', 1)
      redis.call('HINCRBY', KEYS[6], 'enqueued', 1)
      redis.call('XADD', KEYS[10], 'MAXLEN', '~', ARGV[4], '*', 'type', 'job_update', 'data',
        cjson.encode({job_id = id, status = 'queued', previous_status = st, progress = 0,
                      message = ARGV[2], previous_worker_id = wid, job_type = f[3],
                      customer_id = f[4] or nil, priority = tonumber(f[5]),
                      attempts = attempts, signature = f[8]}))
    end
    requeued[#requeued + 1] = id
  end
end
return {kept, requeued}
