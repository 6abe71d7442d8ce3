-- user_online: ARGV prefix, node, app, user → {online 0|1, connections}
check_node(ARGV[2])
local online, count = user_online(ARGV[3], ARGV[4], ARGV[2], 1)
return { online, count }
