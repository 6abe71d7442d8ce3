-- leave: ARGV prefix, node, app, channel → {vacated 0|1, total subscriptions, count number}
check_node(ARGV[2])
local vacated, total = unsubscribe(ARGV[3], ARGV[4], ARGV[2], 1)
return { vacated, total, count_seq() }
