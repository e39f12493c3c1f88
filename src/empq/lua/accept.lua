-- accept.lua: the worker took the job it was assigned (assigned -> accepted).
-- KEYS[1] job   KEYS[2] claims   KEYS[3] counts   KEYS[4] events
-- ARGV[1] claim token   ARGV[2] now ms   ARGV[3] event stream max length   ARGV[4] job id
-- Returns {'OK', status} | {'NOTFOUND'} | {'STALE', current status}.
local f = redis.call('HMGET', KEYS[1], 'status', 'claim_token', 'worker_id', 'type',
  'customer_id', 'priority', 'attempts')
if not f[1] then return {'NOTFOUND'} end
if f[2] ~= ARGV[1] then return {'STALE', f[1]} end
if f[1] ~= 'assigned' then
  -- a duplicate accept, or one overtaken by progress: nothing to change
  return {'OK', f[1]}
end
redis.call('HSET', KEYS[1], 'status', 'accepted')
redis.call('ZREM', KEYS[2], ARGV[4])
redis.call('HINCRBY', KEYS[3], 'assigned', -1)
redis.call('HINCRBY', KEYS[3], 'accepted', 1)
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*', 'type', 'job_update', 'data',
  cjson.encode({job_id = ARGV[4], status = 'accepted', previous_status = 'assigned', progress = 0,
                worker_id = f[3] or nil, job_type = f[4], customer_id = f[5] or nil,
                priority = tonumber(f[6]), attempts = tonumber(f[7])}))
return {'OK', 'accepted'}
