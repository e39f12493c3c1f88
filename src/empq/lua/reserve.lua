-- reserve.lua: claim the one job submit.lua has just queued, in the same call
-- (`submit_reserve`), for a worker whose claim is parked on this hub (it asked). claim.lua's rules
-- for a single named job: the caller's view of the signatures must be current and the
-- job must be the best head of every queue the worker may take from, or nothing
-- changes. Leaner than claim.lua because the job is new: it has no message or start
-- time to clear, and the caller already holds its fields, so the reply is not its hash.
-- KEYS[1] queued  KEYS[2] claims  KEYS[3] running  KEYS[4] worker_jobs  KEYS[5] counts
-- KEYS[6] events  KEYS[7] sigs_version  KEYS[8] the job  KEYS[9] its sig_queue
-- KEYS[10 ..] the sig_queue of every signature the worker may take (its own included)
-- ARGV[1] worker id  ARGV[2] now ms  ARGV[3] claim deadline ms
-- ARGV[4] event stream max length  ARGV[5] the sigs_version the caller knows
-- ARGV[6] claim token  ARGV[7] job id
-- Returns {1, seq, workflow_priority, workflow_datetime, event id} (the fields of the job's hash
-- the caller cannot know: its sequence number, and what a workflow step inherited, ''
-- for none) when the job is now the worker's, 0 when it may not be the best job for it, false when the
-- job is not queued (an idempotent repeat queued nothing).
local h = redis.call('HMGET', KEYS[8], 'order', 'status', 'timeout_ms', 'type',
  'customer_id', 'priority', 'attempts', 'workflow_priority', 'workflow_datetime', 'seq')
local member = h[1]
if not member or h[2] ~= 'queued' then return false end
if (redis.call('GET', KEYS[7]) or '0') ~= ARGV[5] then return 0 end
for q = 10, #KEYS do
  local head = redis.call('ZRANGE', KEYS[q], 0, 0)[1]
  if head and head < member then return 0 end
end
if redis.call('ZREM', KEYS[9], member) == 0 then return false end
local id, now = ARGV[7], tonumber(ARGV[2])
redis.call('ZREM', KEYS[1], member)
redis.call('HSET', KEYS[8], 'status', 'assigned', 'worker_id', ARGV[1],
  'claim_token', ARGV[6], 'assigned_at', now, 'progress', 0)
redis.call('ZADD', KEYS[2], tonumber(ARGV[3]), id)
redis.call('ZADD', KEYS[3], now + (tonumber(h[3]) or 1800000), id)
redis.call('SADD', KEYS[4], id)
redis.call('HINCRBY', KEYS[5], 'queued', -1)
redis.call('HINCRBY', KEYS[5], 'assigned', 1)
if h[5] then redis.call('HINCRBY', KEYS[5], 'held|' .. h[5], 1) end
local eid = redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[4], '*', 'type', 'job_update', 'data',
  cjson.encode({job_id = id, status = 'assigned', previous_status = 'queued',
    progress = 0, worker_id = ARGV[1], job_type = h[4], customer_id = h[5] or nil,
    priority = tonumber(h[6]), attempts = tonumber(h[7])}))
return {1, h[10], h[8] or '', h[9] or '', eid}
