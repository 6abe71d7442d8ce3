-- beat: ARGV prefix, node, timeout ms → 'alive' (heartbeat renewed), 'dead' (declared dead:
-- reaped), 'forgotten' (Redis knows nothing of it: restarted without its data)
local node = ARGV[2]
if redis.call('SISMEMBER', k_nodes(), node) == 1 then
  redis.call('SET', k_alive(node), '1', 'PX', ARGV[3])
  return 'alive'
end
if redis.call('ZSCORE', k_reaped(), node) then
  return 'dead'
end
return 'forgotten'
