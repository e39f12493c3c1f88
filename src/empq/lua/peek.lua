-- peek.lua: the best queued members across the signature queues a worker may claim from.
-- KEYS[1] sigs_version  KEYS[2] counts  KEYS[3..] sig_queue of each eligible signature
-- ARGV[1] how many candidates to return
-- Returns {sigs_version, enqueued, member1, sig_index1, member2, sig_index2, ...} best
-- first, where `enqueued` counts every job ever put in a queue: while it is unchanged,
-- no job has joined any queue, so these candidates stay the best ones that remain.
-- Read-only: the claim itself is claim.lua, which re-checks each member is still queued.
local k = tonumber(ARGV[1])
local version = redis.call('GET', KEYS[1]) or '0'
local enqueued = redis.call('HGET', KEYS[2], 'enqueued') or '0'
local cands = {}
for i = 3, #KEYS do
  local head = redis.call('ZRANGE', KEYS[i], 0, k - 1)
  for _, m in ipairs(head) do
    cands[#cands + 1] = {m, i - 2}
  end
end
if #KEYS > 3 then
  table.sort(cands, function(a, b) return a[1] < b[1] end)
end
local out = {version, enqueued}
for i = 1, math.min(k, #cands) do
  out[#out + 1] = cands[i][1]
  out[#out + 1] = cands[i][2]
end
return out
