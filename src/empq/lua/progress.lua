-- progress.lua: a progress report from the worker holding the job (-> in_progress).
-- KEYS[1] job   KEYS[2] claims   KEYS[3] counts   KEYS[4] events
-- ARGV[1] claim token  ARGV[2] progress 0..100  ARGV[3] message ('' for none)
-- ARGV[4] now ms  ARGV[5] event stream max length  ARGV[6] job id
-- Returns {'OK', previous status} | {'NOTFOUND'} | {'STALE', current status}.
local f = redis.call('HMGET', KEYS[1], 'status', 'claim_token', 'worker_id', 'type',
  'customer_id', 'priority', 'attempts')
local st = f[1]
if not st then return {'NOTFOUND'} end
if f[2] ~= ARGV[1] then return {'STALE', st} end
if st ~= 'assigned' and st ~= 'accepted' and st ~= 'in_progress' then return {'STALE', st} end
local fields = {'progress', ARGV[2]}
if ARGV[3] ~= '' then fields[#fields + 1] = 'message'; fields[#fields + 1] = ARGV[3] end
if st ~= 'in_progress' then
  fields[#fields + 1] = 'status'; fields[#fields + 1] = 'in_progress'
  fields[#fields + 1] = 'started_at'; fields[#fields + 1] = ARGV[4]
  redis.call('ZREM', KEYS[2], ARGV[6])
  redis.call('HINCRBY', KEYS[3], st, -1)
  redis.call('HINCRBY', KEYS[3], 'in_progress', 1)
end
redis.call('HSET', KEYS[1], unpack(fields))
local ev = {job_id = ARGV[6], status = 'in_progress', progress = tonumber(ARGV[2]),
            worker_id = f[3] or nil, job_type = f[4], customer_id = f[5] or nil,
            priority = tonumber(f[6]), attempts = tonumber(f[7])}
if st ~= 'in_progress' then ev.previous_status = st end
if ARGV[3] ~= '' then ev.message = ARGV[3] end
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', 'type', 'job_update', 'data',
  cjson.encode(ev))
return {'OK', st}
