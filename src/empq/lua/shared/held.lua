-- held(counts, cust, d, sums): add d to counts' `held|<customer>`, how many of the
-- customer's jobs workers hold (its limit); the field goes when it reaches 0. With
-- `sums` (sums.lua) the change is summed there and written by write_sums.
local function held(counts, cust, d, sums)
  if cust then bump(sums, counts, 'held|' .. cust, d, 'held') end
end
