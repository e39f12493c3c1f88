-- gc_signature.lua: drop a signature whose queue is empty, so claims stop looking at it.
-- KEYS[1] sigs  KEYS[2] sigs_version  KEYS[3] sig_queue
-- ARGV[1] signature  ARGV[2] a fresh registry version
-- Returns 1 when dropped.
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  redis.call('SET', KEYS[2], ARGV[2])
  return 1
end
return 0
