-- join: ARGV prefix, node, app, channel → {occupied 0|1, total subscriptions, count number}
check_node(ARGV[2])
local occupied, total = subscribe(ARGV[3], ARGV[4], ARGV[2], 1)
return { occupied, total, count_seq() }
