-- cleanup.lua: forget one final job older than the retention period.
-- KEYS[1] job  KEYS[2] finished  KEYS[3] all_jobs  KEYS[4] by_customer  KEYS[5] by_type
-- KEYS[6] idempotency  KEYS[7] counts
-- ARGV[1] cutoff ms  ARGV[2] job id  ARGV[3] idempotency key ('' for none)
-- Returns 1 when removed, 0 when the job is no longer old and final.
local id = ARGV[2]
local at = redis.call('ZSCORE', KEYS[2], id)
if not at or tonumber(at) > tonumber(ARGV[1]) then return 0 end
local st = redis.call('HGET', KEYS[1], 'status')
redis.call('ZREM', KEYS[2], id)
redis.call('ZREM', KEYS[3], id)
redis.call('ZREM', KEYS[4], id)
redis.call('ZREM', KEYS[5], id)
if ARGV[3] ~= '' and redis.call('HGET', KEYS[6], ARGV[3]) == id then
  redis.call('HDEL', KEYS[6], ARGV[3])
end
if st then
  redis.call('HINCRBY', KEYS[7], st, -1)
  redis.call('DEL', KEYS[1])
end
return 1
