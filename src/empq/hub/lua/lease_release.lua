-- Release leader leases, each only if the caller still holds it.
-- KEYS     the lease keys
-- ARGV[1]  the holder id (this hub)
-- Returns how many were released.
local released = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    released = released + redis.call('DEL', key)
  end
end
return released
