-- user_offline: ARGV prefix, node, app, user → {offline 0|1, connections}
check_node(ARGV[2])
local offline, count = user_offline(ARGV[3], ARGV[4], ARGV[2], 1)
return { offline, count }
