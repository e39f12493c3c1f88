-- held(counts, cust, d): add d to counts' `held|<customer>`, how many of the customer's
-- jobs workers hold (its limit); the field goes when it reaches 0. Needs sums.lua.
local function held(counts, cust, d)
  if cust then bump(nil, counts, 'held|' .. cust, d, 'held') end
end
