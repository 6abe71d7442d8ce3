-- restore: ARGV prefix, node, then records of six: kind, app, channel, user, info, count
--   kind 's': the node holds `count` subscriptions to channel (user, info unused)
--   kind 'm': the node holds `count` connections of member `user` in channel, with `info`
--   kind 'u': the node holds `count` signed-in connections of `user` (channel, info unused)
-- → the number of records applied. Sets the node's share to exactly `count` (so restoring
-- twice changes nothing), moving the cluster's totals by the difference through lib.lua.
-- Reports no transition: this reasserts what the node held before Redis lost it, so clients
-- and webhooks already heard of it. The member limit is not checked (they were admitted).
local node = ARGV[2]
check_node(node)
local applied = 0
for i = 3, #ARGV, 6 do
  local kind, app, ch, user, info = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local want = tonumber(ARGV[i + 5]) or 0
  if kind == 's' then
    local delta = want - num(redis.call('HGET', k_channel(app, ch), node))
    if delta > 0 then subscribe(app, ch, node, delta) end
    if delta < 0 then unsubscribe(app, ch, node, -delta) end
  elseif kind == 'm' then
    local field = app .. ':' .. ch .. ':' .. user
    local delta = want - num(redis.call('HGET', k_node_members(node), field))
    if delta > 0 then
      redis.call('HINCRBY', k_members(app, ch), user, delta)
      redis.call('HINCRBY', k_node_members(node), field, delta)
    end
    if delta < 0 then member_leave(app, ch, node, user, -delta) end
    if want > 0 then redis.call('HSET', k_info(app, ch), user, info) end
  elseif kind == 'u' then
    local delta = want - num(redis.call('HGET', k_node_users(node), app .. ':' .. user))
    if delta > 0 then user_online(app, user, node, delta) end
    if delta < 0 then user_offline(app, user, node, -delta) end
  else
    error({ err = 'HERALD_RESTORE unknown record kind ' .. tostring(kind) })
  end
  applied = applied + 1
end
return applied
