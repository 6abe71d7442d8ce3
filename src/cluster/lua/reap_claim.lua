-- reap_claim: ARGV prefix, me, how long tombstones are kept (ms) → the dead nodes I must
-- replay. A registered node whose heartbeat expired is claimed here, atomically, by exactly one
-- node: it leaves P:nodes, gets a tombstone in P:reaped and me as its reaper in P:reaping.
-- Claims of a reaper whose own heartbeat expired pass to me.
local me = ARGV[2]
check_node(me)
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', k_reaped(), '-inf', now - tonumber(ARGV[3]))
for _, node in ipairs(redis.call('SMEMBERS', k_nodes())) do
  if node ~= me and redis.call('EXISTS', k_alive(node)) == 0 then
    redis.call('SREM', k_nodes(), node)
    redis.call('ZADD', k_reaped(), now, node)
    redis.call('HSET', k_reaping(), node, me)
  end
end
local mine = {}
local reaping = redis.call('HGETALL', k_reaping())
for i = 1, #reaping, 2 do
  local node, reaper = reaping[i], reaping[i + 1]
  if reaper ~= me and redis.call('EXISTS', k_alive(reaper)) == 0 then
    redis.call('HSET', k_reaping(), node, me)
    reaper = me
  end
  if reaper == me then
    table.insert(mine, node)
  end
end
return mine
