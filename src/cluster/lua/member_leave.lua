-- member_leave: ARGV prefix, node, app, channel, user → {removed 0|1, member count}
check_node(ARGV[2])
local removed, count = member_leave(ARGV[3], ARGV[4], ARGV[2], ARGV[5], 1)
return { removed, count }
