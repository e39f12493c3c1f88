-- claim.lua: hand a worker up to `want` of several candidate jobs, the first ones still
-- queued, each fenced by its own fresh claim token. Candidates come best first from
-- peek.lua; those other workers took in the meantime are skipped, so contending
-- claimers each get jobs in one call, in claim order.
-- KEYS[1] queued  KEYS[2] claims  KEYS[3] running  KEYS[4] worker_jobs  KEYS[5] counts
-- KEYS[6] events  KEYS[7] sigs_version
-- KEYS[8 .. 7 + e] the sig_queue of every signature the worker may take
-- then per candidate i: KEYS[6 + e + 2i] job, KEYS[7 + e + 2i] its sig_queue
-- ARGV[1] worker id  ARGV[2] now ms  ARGV[3] claim deadline ms
-- ARGV[4] event stream max length  ARGV[5] the `enqueued` count peek.lua saw
-- ARGV[6] want: most jobs to claim  ARGV[7] e  ARGV[8] the sigs_version the caller knows
-- ARGV[9 .. 8 + want] one claim token per job
-- then per candidate i: ARGV[8 + want + i] its member (order key), or '' to read it
--   from the job hash
-- ARGV[9 + want + n] (optional; '' for none) per-customer limits, JSON {customer: max, "*": max}: a
--   candidate whose customer already holds its max is skipped (it stays queued)
-- ARGV[10 + want + n] (optional) the warm window in ms (EMPQ_WARM_WINDOW_SECONDS): the
--   first candidate may be a warm job other than the best head, of the head's priority
--   and queued at most this long after it
-- When jobs were queued since the peek (`enqueued` moved), a newer job may be better
-- than the candidates: then one job is claimed, and only if the caller's view of the
-- signatures is current and the first candidate still queued is the best head of the
-- worker's queues.
-- The claimed jobs' `job_update` events share one stream entry (data: an array when
-- there are several), so a batch of claims costs the stream and its readers one entry.
-- Returns 0 when the candidates may no longer be the best, false when every candidate
-- was taken, else {event id, member, job hash (HGETALL), member, ...} in claim order; the
-- n-th job claimed holds the n-th token, and the event id is the claim's stream entry (a
-- hub's hold of the jobs is newer than every event before it).
--! include sums
--! include held
local want = tonumber(ARGV[6])
local e = tonumber(ARGV[7])
local n = (#KEYS - 7 - e) / 2
local limits = ARGV[9 + want + n]
if limits and limits ~= '' then limits = cjson.decode(limits) else limits = nil end
local function at_limit(job_key)
  if not limits then return false end
  local c = redis.call('HGET', job_key, 'customer_id')
  if not c then return false end
  local most = limits[c] or limits['*']
  return most ~= nil and (tonumber(redis.call('HGET', KEYS[5], 'held|' .. c)) or 0) >= most
end
-- An empty member names the job by its key alone (a job queued in the same pipeline,
-- whose order key the caller cannot know yet): it is read from the job's hash.
local members = {}
for i = 1, n do
  local m = ARGV[8 + want + i]
  if m == '' then m = redis.call('HGET', KEYS[6 + e + 2 * i], 'order') or '' end
  members[i] = m
end
if (redis.call('HGET', KEYS[5], 'enqueued') or '0') ~= ARGV[5] then
  if (redis.call('GET', KEYS[7]) or '0') ~= ARGV[8] then return 0 end
  local best = nil
  for q = 1, e do
    local head = redis.call('ZRANGE', KEYS[7 + q], 0, 0)[1]
    if head and (best == nil or head < best) then best = head end
  end
  local first = nil
  for i = 1, n do
    if members[i] ~= '' and redis.call('ZSCORE', KEYS[7 + e + 2 * i], members[i]) then
      first = members[i]
      break
    end
  end
  local window = tonumber(ARGV[10 + want + n]) or 0
  if first == nil or best == nil then return 0 end
  if first ~= best and not (window > 0 and string.sub(first, 1, 3) == string.sub(best, 1, 3)
      and tonumber(string.sub(first, 4, 16)) - tonumber(string.sub(best, 4, 16)) <= window) then
    return 0
  end
  want = 1
end
local now = tonumber(ARGV[2])
local out = {}
local events = {}
local got = 0
-- What every claimed job adds to the same keys is written once, after the loop: the
-- members leaving the queue, the claim and run deadlines, the worker's jobs and (when
-- no customer limit reads them meanwhile) the customers' held counts.
local taken, ids, running = {}, {}, {}
local sums = nil
if not limits and want > 1 then sums = new_sums() end
for i = 1, n do
  if got == want then break end
  local job_key, q_key = KEYS[6 + e + 2 * i], KEYS[7 + e + 2 * i]
  local member = members[i]
  if member ~= '' and not at_limit(job_key) and redis.call('ZREM', q_key, member) == 1 then
    got = got + 1
    local token = ARGV[8 + got]
    local id = string.sub(member, string.find(member, '|', 1, true) + 1)
    local timeout_ms = tonumber(redis.call('HGET', job_key, 'timeout_ms')) or 1800000
    redis.call('HSET', job_key, 'status', 'assigned', 'worker_id', ARGV[1],
      'claim_token', token, 'assigned_at', now, 'progress', 0)
    redis.call('HDEL', job_key, 'message', 'started_at', 'retry_at')
    taken[got], ids[got] = member, id
    running[2 * got - 1], running[2 * got] = now + timeout_ms, id
    local job = redis.call('HGETALL', job_key)
    local f = {}
    for j = 1, #job, 2 do f[job[j]] = job[j + 1] end
    held(KEYS[5], f.customer_id, 1, sums)
    events[#events + 1] = {job_id = id, status = 'assigned', previous_status = 'queued',
      progress = 0, worker_id = ARGV[1], job_type = f.type, customer_id = f.customer_id,
      priority = tonumber(f.priority), attempts = tonumber(f.attempts)}
    out[#out + 1] = member
    out[#out + 1] = job
  end
end
if got == 0 then return false end
redis.call('ZREM', KEYS[1], unpack(taken))
local claims = {}
for j = 1, got do claims[2 * j - 1], claims[2 * j] = ARGV[3], ids[j] end
redis.call('ZADD', KEYS[2], unpack(claims))
redis.call('ZADD', KEYS[3], unpack(running))
redis.call('SADD', KEYS[4], unpack(ids))
if sums then write_sums(sums) end
redis.call('HINCRBY', KEYS[5], 'queued', -got)
redis.call('HINCRBY', KEYS[5], 'assigned', got)
-- One stream entry for the whole claim: a single event, or a JSON array of them.
local data = cjson.encode(events[1])
if got > 1 then data = cjson.encode(events) end
local eid = redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[4], '*', 'type', 'job_update',
  'data', data)
table.insert(out, 1, eid)
return out
