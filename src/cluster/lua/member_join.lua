-- member_join: ARGV prefix, node, app, channel, user, info, max members, bus payload
--   → {1 added | 0 already a member | -1 full, member count}
-- A member added is announced on the bus (the payload, `member_added`) in the same step, so
-- every node hears of a channel's member transitions in the order the cluster decided them.
check_node(ARGV[2])
local added, count = member_join(ARGV[3], ARGV[4], ARGV[2], ARGV[5], ARGV[6], tonumber(ARGV[7]))
if added == 1 then redis.call('PUBLISH', k_bus(), ARGV[8]) end
return { added, count }
