-- held(counts, cust, d): add d to counts' `held|<customer>`, how many of the customer's
-- jobs workers hold (its limit); the field goes when it reaches 0.
local function held(counts, cust, d)
  if not cust then return end
  if redis.call('HINCRBY', counts, 'held|' .. cust, d) <= 0 then
    redis.call('HDEL', counts, 'held|' .. cust)
  end
end
