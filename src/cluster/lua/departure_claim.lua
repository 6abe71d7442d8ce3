-- departure_claim: ARGV prefix, limit → the departures whose grace period is over (at most
-- `limit`), removed: each is returned to exactly one caller in the cluster.
local limit = tonumber(ARGV[2]) or 100
local due = redis.call('ZRANGEBYSCORE', k_departures(), '-inf', now_ms(), 'LIMIT', 0, limit)
for _, departure in ipairs(due) do
  redis.call('ZREM', k_departures(), departure)
end
return due
