-- register: ARGV prefix, node, timeout ms → 1; refused for a node declared dead
local node = ARGV[2]
if redis.call('ZSCORE', k_reaped(), node) then
  error({ err = 'HERALD_DEAD node ' .. node .. ' was declared dead' })
end
redis.call('SADD', k_nodes(), node)
redis.call('SET', k_alive(node), '1', 'PX', ARGV[3])
return 1
