-- webhook_push: ARGV prefix, event (JSON text, unique) → 1
-- Queues a webhook event, ready now (Redis's clock); any node claims it with webhook_claim.
redis.call('ZADD', k_webhooks(), now_ms(), ARGV[2])
return 1
