-- webhook_claim: ARGV prefix, limit, lease in ms → the webhook events ready now (at most
-- `limit`), each leased to the caller: it stays queued, ready again when the lease ends, so an
-- event whose claimer died before settling it is claimed again. The claimer removes it (ZREM)
-- once every delivery of it settled.
local limit, lease = tonumber(ARGV[2]) or 100, tonumber(ARGV[3]) or 60000
local now = now_ms()
local ready = redis.call('ZRANGEBYSCORE', k_webhooks(), '-inf', now, 'LIMIT', 0, limit)
for _, event in ipairs(ready) do
  redis.call('ZADD', k_webhooks(), 'XX', now + lease, event)
end
return ready
