-- retire: ARGV prefix, node → how many records were left. The node leaves the cluster on
-- purpose; what it still holds is handed to whoever reaps next (reaper '' is never alive).
local node = ARGV[2]
check_node(node)
redis.call('SREM', k_nodes(), node)
redis.call('DEL', k_alive(node), k_node_connections(node))
local left = redis.call('SCARD', k_node_channels(node))
  + redis.call('HLEN', k_node_members(node))
  + redis.call('HLEN', k_node_users(node))
if left > 0 then
  redis.call('HSET', k_reaping(), node, '')
end
return left
