-- webhook_renew: ARGV prefix, lease in ms, then events → how many were still queued. Extends
-- the lease of events the caller is still delivering (those settled meanwhile stay removed).
local lease = tonumber(ARGV[2]) or 60000
local until_ms = now_ms() + lease
local renewed = 0
for i = 3, #ARGV do
  renewed = renewed + redis.call('ZADD', k_webhooks(), 'XX', 'CH', until_ms, ARGV[i])
end
return renewed
