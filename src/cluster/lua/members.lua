-- members: ARGV prefix, app, channel → {user, info, ...} (info '' when the member has none)
return redis.call('HGETALL', k_info(ARGV[2], ARGV[3]))
