-- rate.lua: take `cost` submissions from a customer's token bucket (EMPQ_CUSTOMER_SUBMIT_RATE).
-- KEYS[1] the customer's bucket (hash: tokens, at)
-- ARGV[1] now ms  ARGV[2] rate (tokens per second)  ARGV[3] capacity  ARGV[4] cost
-- The bucket refills at `rate` up to `capacity`. A call is let through while at least
-- one token is left, and takes its whole cost (a batch may leave the bucket in debt,
-- which later calls wait out), so a batch larger than the capacity still passes.
-- Returns 0 when let through, else the ms until a token is back (nothing taken).
local now = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local capacity = tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or capacity
local at = tonumber(b[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) / 1000 * rate)
if tokens < 1 then return math.ceil((1 - tokens) / rate * 1000) end
tokens = tokens - tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
-- Gone once it would be full again: an idle customer costs no key.
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate * 1000) + 1000)
return 0
