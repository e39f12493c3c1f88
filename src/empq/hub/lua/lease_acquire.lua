-- Acquire or renew a leader lease.
-- KEYS[1]  the lease key
-- ARGV[1]  the holder id (this hub)
-- ARGV[2]  time to live in ms
-- Returns 1 when the caller holds the lease afterwards, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
