-- connection_open: ARGV prefix, node, app, max → the app's connections in the cluster with
-- this one, or -1 (refused: the cluster already has `max`; nothing changed). Counts the
-- connections of every registered node (a dead one stops counting when it is claimed).
local node, app, max = ARGV[2], ARGV[3], tonumber(ARGV[4]) or 0
check_node(node)
local total = 0
for _, n in ipairs(redis.call('SMEMBERS', k_nodes())) do
  total = total + num(redis.call('HGET', k_node_connections(n), app))
end
if max > 0 and total >= max then
  return -1
end
redis.call('HINCRBY', k_node_connections(node), app, 1)
return total + 1
