-- bump(sums, key, field, d, kind): add d to a hash field: HINCRBY, or HINCRBYFLOAT for
-- kind 'float'; kind 'held' is a count whose field goes when it reaches 0 (held.lua).
-- With sums nil it is written at once. With sums (new_sums()) it is only added there,
-- and write_sums(sums) then writes each field once, in the order first bumped: a
-- script reporting many jobs in one call costs each counter one command, not one a job.
-- (Lua tables are not free in Redis, ~0.3 µs each: a one-job call makes none.)
local function new_sums() return {at = {}, key = {}, field = {}, d = {}, kind = {}} end
local function bump(sums, key, field, d, kind)
  if sums == nil then
    if kind == 'float' then
      redis.call('HINCRBYFLOAT', key, field, d)
    elseif redis.call('HINCRBY', key, field, d) <= 0 and kind == 'held' then
      redis.call('HDEL', key, field)
    end
    return
  end
  local id = key .. '\n' .. field
  local i = sums.at[id]
  if i == nil then
    i = #sums.key + 1
    sums.at[id], sums.key[i], sums.field[i], sums.d[i], sums.kind[i] = i, key, field, 0, kind
  end
  sums.d[i] = sums.d[i] + d
end
local function write_sums(sums)
  for i = 1, #sums.key do
    if sums.d[i] ~= 0 or sums.kind[i] == 'float' then
      bump(nil, sums.key[i], sums.field[i], sums.d[i], sums.kind[i])
    end
  end
end
