-- member_join: ARGV prefix, node, app, channel, user, info, max members
--   → {1 added | 0 already a member | -1 full, member count}
check_node(ARGV[2])
local added, count = member_join(ARGV[3], ARGV[4], ARGV[2], ARGV[5], ARGV[6], tonumber(ARGV[7]))
return { added, count }
