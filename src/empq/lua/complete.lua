-- complete.lua: the worker holding the job reports success (-> completed, final).
-- KEYS[1] job  KEYS[2] claims  KEYS[3] running  KEYS[4] worker_jobs  KEYS[5] finished
-- KEYS[6] counts  KEYS[7] stats  KEYS[8] events
-- ARGV[1] claim token  ARGV[2] result JSON  ARGV[3] processing time s ('' if unknown)
-- ARGV[4] now ms  ARGV[5] event stream max length  ARGV[6] job id
-- Returns {'OK'} | {'NOTFOUND'} | {'STALE', current status}.
local f = redis.call('HMGET', KEYS[1], 'status', 'claim_token', 'worker_id', 'type',
  'customer_id', 'priority', 'attempts', 'created_at', 'assigned_at', 'started_at')
local st = f[1]
if not st then return {'NOTFOUND'} end
if f[2] ~= ARGV[1] then return {'STALE', st} end
if st ~= 'assigned' and st ~= 'accepted' and st ~= 'in_progress' then return {'STALE', st} end
local now = tonumber(ARGV[4])
local id = ARGV[6]
redis.call('HSET', KEYS[1], 'status', 'completed', 'completed_at', now, 'progress', 100,
  'result', ARGV[2])
redis.call('HDEL', KEYS[1], 'claim_token', 'error', 'error_details', 'retry_at')
redis.call('ZREM', KEYS[2], id)
redis.call('ZREM', KEYS[3], id)
redis.call('SREM', KEYS[4], id)
redis.call('ZADD', KEYS[5], now, id)
redis.call('HINCRBY', KEYS[6], st, -1)
redis.call('HINCRBY', KEYS[6], 'completed', 1)
local assigned = tonumber(f[9]) or now
local started = tonumber(f[10]) or assigned
local ptime = tonumber(ARGV[3]) or ((now - started) / 1000)
redis.call('HINCRBY', KEYS[7], 'completed_total', 1)
redis.call('HINCRBYFLOAT', KEYS[7], 'run_seconds_sum', ptime)
redis.call('HINCRBYFLOAT', KEYS[7], 'wait_seconds_sum', (assigned - (tonumber(f[8]) or assigned)) / 1000)
-- The event is built as text so a large result is copied, never decoded and re-encoded.
redis.call('XADD', KEYS[8], 'MAXLEN', '~', ARGV[5], '*', 'type', 'job_completed', 'data',
  '{"job_id":' .. cjson.encode(id) .. ',"status":"completed","previous_status":' .. cjson.encode(st)
  .. ',"worker_id":' .. cjson.encode(f[3]) .. ',"processing_time":' .. cjson.encode(ptime)
  .. ',"job_type":' .. cjson.encode(f[4]) .. ',"customer_id":' .. cjson.encode(f[5] or cjson.null)
  .. ',"priority":' .. (f[6] or '0') .. ',"attempts":' .. (f[7] or '0') .. ',"progress":100'
  .. ',"result":' .. ARGV[2] .. '}')
return {'OK'}
