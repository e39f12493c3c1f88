-- claim.lua: hand a worker the first of several candidate jobs that is still queued,
-- fenced by a fresh claim token. Candidates come best first from peek.lua; when other
-- workers took the first ones in the meantime, this takes the next, so contending
-- claimers each get a job in one call, in claim order.
-- KEYS[1] queued  KEYS[2] claims  KEYS[3] running  KEYS[4] worker_jobs  KEYS[5] counts
-- KEYS[6] events  then per candidate i: KEYS[5 + 2i] job, KEYS[6 + 2i] its sig_queue
-- ARGV[1] worker id  ARGV[2] claim token  ARGV[3] now ms  ARGV[4] claim deadline ms
-- ARGV[5] event stream max length  ARGV[6] the `enqueued` count peek.lua saw
-- then per candidate i: ARGV[6 + i] its member (order key)
-- Returns 0 when jobs were queued since the peek (candidates may no longer be the best),
-- false when every candidate was taken, else {member won, job hash (HGETALL)}.
if (redis.call('HGET', KEYS[5], 'enqueued') or '0') ~= ARGV[6] then return 0 end
local now = tonumber(ARGV[3])
local n = (#KEYS - 6) / 2
for i = 1, n do
  local job_key, q_key = KEYS[5 + 2 * i], KEYS[6 + 2 * i]
  local member = ARGV[6 + i]
  if redis.call('ZREM', q_key, member) == 1 then
    local id = string.sub(member, string.find(member, '|', 1, true) + 1)
    redis.call('ZREM', KEYS[1], member)
    local timeout_ms = tonumber(redis.call('HGET', job_key, 'timeout_ms')) or 1800000
    redis.call('HSET', job_key, 'status', 'assigned', 'worker_id', ARGV[1],
      'claim_token', ARGV[2], 'assigned_at', now, 'progress', 0)
    redis.call('HDEL', job_key, 'message', 'started_at', 'retry_at')
    redis.call('ZADD', KEYS[2], tonumber(ARGV[4]), id)
    redis.call('ZADD', KEYS[3], now + timeout_ms, id)
    redis.call('SADD', KEYS[4], id)
    redis.call('HINCRBY', KEYS[5], 'queued', -1)
    redis.call('HINCRBY', KEYS[5], 'assigned', 1)
    local job = redis.call('HGETALL', job_key)
    local f = {}
    for j = 1, #job, 2 do f[job[j]] = job[j + 1] end
    redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[5], '*', 'type', 'job_update', 'data',
      cjson.encode({job_id = id, status = 'assigned', previous_status = 'queued', progress = 0,
                    worker_id = ARGV[1], job_type = f.type, customer_id = f.customer_id,
                    priority = tonumber(f.priority), attempts = tonumber(f.attempts)}))
    return {member, job}
  end
end
return false
