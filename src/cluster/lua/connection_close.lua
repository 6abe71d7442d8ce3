-- connection_close: ARGV prefix, node, app → the node's connections of the app now. Never
-- below zero (a close whose open Redis never saw, after a restart, changes nothing).
local node, app = ARGV[2], ARGV[3]
check_node(node)
local key = k_node_connections(node)
if num(redis.call('HGET', key, app)) <= 0 then
  return 0
end
local left = redis.call('HINCRBY', key, app, -1)
if left <= 0 then
  redis.call('HDEL', key, app)
end
return left
