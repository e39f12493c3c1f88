-- peek.lua: the best queued members across the signature queues a worker may claim from.
-- KEYS[1] sigs_version   KEYS[2..] sig_queue of each eligible signature
-- ARGV[1] how many candidates to return
-- Returns {sigs_version, member1, sig_index1, member2, sig_index2, ...} best first.
-- Read-only: the claim itself is claim.lua, which re-checks the member is still queued.
local k = tonumber(ARGV[1])
local version = redis.call('GET', KEYS[1]) or '0'
local cands = {}
for i = 2, #KEYS do
  local head = redis.call('ZRANGE', KEYS[i], 0, k - 1)
  for _, m in ipairs(head) do
    cands[#cands + 1] = {m, i - 1}
  end
end
if #KEYS > 2 then
  table.sort(cands, function(a, b) return a[1] < b[1] end)
end
local out = {version}
for i = 1, math.min(k, #cands) do
  out[#out + 1] = cands[i][1]
  out[#out + 1] = cands[i][2]
end
return out
