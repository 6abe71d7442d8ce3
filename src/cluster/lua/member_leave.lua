-- member_leave: ARGV prefix, node, app, channel, user, bus payload → {removed 0|1, member count}
-- A member removed is announced on the bus (the payload, `member_removed`) in the same step, as
-- in member_join.
check_node(ARGV[2])
local removed, count = member_leave(ARGV[3], ARGV[4], ARGV[2], ARGV[5], 1)
if removed == 1 then redis.call('PUBLISH', k_bus(), ARGV[6]) end
return { removed, count }
