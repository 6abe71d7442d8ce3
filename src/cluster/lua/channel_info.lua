-- channel_info: ARGV prefix, app, channel → {subscriptions, members}
local app, ch = ARGV[2], ARGV[3]
return { num(redis.call('HGET', k_channel(app, ch), TOTAL)), redis.call('HLEN', k_members(app, ch)) }
