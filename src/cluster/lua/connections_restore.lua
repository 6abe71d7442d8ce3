-- connections_restore: ARGV prefix, node, then pairs app, count → 1. Sets the node's
-- connection counts to exactly these (apps not given: none), reasserting them after an outage.
local node = ARGV[2]
check_node(node)
local key = k_node_connections(node)
redis.call('DEL', key)
for i = 3, #ARGV, 2 do
  local n = tonumber(ARGV[i + 1]) or 0
  if n > 0 then
    redis.call('HSET', key, ARGV[i], n)
  end
end
return 1
