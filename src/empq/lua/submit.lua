-- submit.lua: queue one or more jobs atomically (a batch is all or nothing).
-- KEYS[1] seq          KEYS[2] queued        KEYS[3] sigs        KEYS[4] sigs_version
-- KEYS[5] counts       KEYS[6] idempotency   KEYS[7] all_jobs    KEYS[8] events
-- then per job i (5 keys from 8 + (i-1)*5): job, sig_queue, workflow, by_customer, by_type
--   (workflow / by_customer are the job key itself when the job has none)
-- ARGV[1] now_ms  ARGV[2] event stream max length
-- ARGV[3] a fresh registry version (set when a signature is new)
-- ARGV[4..] one JSON job descriptor each:
--   {id, fields: {...}, sig, spec, idem?, wf: bool, cust: bool, priority, wp?, wt?, step,
--    fair?: the cost of one turn of the job's customer (fair share on)}
-- KEYS[9 + 5n] (only with fair share on) fair_turns
-- Fair share (EMPQ_FAIR_SHARE=customer): the job's time field in its order key is its
-- customer's turn instead of its submit time. A customer's next turn at a priority is
-- max(its last turn + its cost, the turn of the best job queued at that priority, or
-- when there is none the latest turn given there or now), and its cost is 1000 / weight: so, at one priority, queued jobs
-- sort round-robin by customer, weighted, and a new customer takes the next turn rather
-- than the end of another's burst. A workflow's steps share its first step's turn.
-- Returns per job: {job_id, created (1|0), position, order key (false if not created)}.
local now = tonumber(ARGV[1])
local maxlen = ARGV[2]
local results = {}
local members = {}
local fair_key = KEYS[9 + (#ARGV - 3) * 5]

-- The customer's fair-share turn at effective priority ep (see the header).
local function turn(d, ep, wf_key)
  if d.wf then
    local t = redis.call('HGET', wf_key, 'turn')
    if t then return tonumber(t) end
  end
  local band = string.format('%03d', 100 - ep)
  local head = redis.call('ZRANGEBYLEX', KEYS[2], '[' .. band, '(' .. band .. '~', 'LIMIT', 0, 1)[1]
  -- `band` alone holds the latest turn anyone reached there: when nothing is queued
  -- at that priority, the next turns start from it (or now), so the customers that
  -- had turns last are not held back behind one that comes back.
  local latest = tonumber(redis.call('HGET', fair_key, band) or '0')
  local v = math.max(now, latest)
  if head then v = tonumber(string.sub(head, 4, 16)) end
  local field = band .. '|' .. (d.fields.customer_id or '')
  local t = math.max(tonumber(redis.call('HGET', fair_key, field) or '0'), v)
  redis.call('HSET', fair_key, field, t + d.fair)
  if t + d.fair > latest then redis.call('HSET', fair_key, band, t + d.fair) end
  if d.wf then redis.call('HSET', wf_key, 'turn', t) end
  return t
end

for i = 4, #ARGV do
  local d = cjson.decode(ARGV[i])
  local base = 8 + (i - 4) * 5
  local job_key, q_key, wf_key, cust_key, type_key =
    KEYS[base + 1], KEYS[base + 2], KEYS[base + 3], KEYS[base + 4], KEYS[base + 5]
  local existing = false
  if d.idem ~= cjson.null and d.idem ~= nil then
    existing = redis.call('HGET', KEYS[6], d.idem)
  end
  if existing then
    results[#results + 1] = {existing, 0}
    members[#results] = false
  else
    local wp = d.wp
    local wt = d.wt
    if wp == cjson.null then wp = nil end
    if wt == cjson.null then wt = nil end
    if d.wf then
      if wp ~= nil then redis.call('HSETNX', wf_key, 'priority', wp) end
      redis.call('HSETNX', wf_key, 'datetime', wt or now)
      if wp == nil then wp = tonumber(redis.call('HGET', wf_key, 'priority')) end
      if wt == nil then wt = tonumber(redis.call('HGET', wf_key, 'datetime')) end
    end
    local ep = wp or d.priority
    local et = wt or now
    if d.fair then et = turn(d, ep, wf_key) end
    local seq = redis.call('INCR', KEYS[1])
    local member = string.format('%03d%013d%06d%012d|%s', 100 - ep, et, d.step, seq, d.id)
    local args = {'status', 'queued', 'order', member, 'sig', d.sig, 'spec', d.spec, 'seq', seq,
                  'created_at', now, 'attempts', 0, 'progress', 0}
    if wp ~= nil then args[#args + 1] = 'workflow_priority'; args[#args + 1] = wp end
    if wt ~= nil then args[#args + 1] = 'workflow_datetime'; args[#args + 1] = wt end
    for k, v in pairs(d.fields) do
      args[#args + 1] = k
      args[#args + 1] = v
    end
    redis.call('HSET', job_key, unpack(args))
    redis.call('ZADD', q_key, 0, member)
    redis.call('ZADD', KEYS[2], 0, member)
    if redis.call('HSETNX', KEYS[3], d.sig, d.spec) == 1 then
      redis.call('SET', KEYS[4], ARGV[3])
    end
    redis.call('HINCRBY', KEYS[5], 'queued', 1)
    redis.call('HINCRBY', KEYS[5], 'enqueued', 1)
    redis.call('ZADD', KEYS[7], seq, d.id)
    if d.cust then redis.call('ZADD', cust_key, seq, d.id) end
    redis.call('ZADD', type_key, seq, d.id)
    if d.idem ~= cjson.null and d.idem ~= nil then
      redis.call('HSET', KEYS[6], d.idem, d.id)
    end
    local cust = d.fields.customer_id
    redis.call('XADD', KEYS[8], 'MAXLEN', '~', maxlen, '*', 'type', 'job_update', 'data',
      cjson.encode({job_id = d.id, status = 'queued', progress = 0,
                    job_type = d.fields.type, customer_id = cust, priority = ep,
                    attempts = 0, signature = d.sig, webhook_url = d.fields.webhook_url}))
    results[#results + 1] = {d.id, 1}
    members[#results] = member
  end
end

-- Positions after the whole batch is in, so each is the job's place now.
-- (An idempotent hit answers false here; the caller reads that job's position.)
for i = 1, #results do
  local pos = false
  if members[i] then
    pos = redis.call('ZRANK', KEYS[2], members[i]) + 1
  end
  results[i][3] = pos
  results[i][4] = members[i]
end
return results
