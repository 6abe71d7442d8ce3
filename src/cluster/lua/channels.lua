-- channels: ARGV prefix, app, name prefix → {channel, subscriptions, members, ...} for every
-- occupied channel whose name starts with the name prefix, in name order
local app, prefix = ARGV[2], ARGV[3]
local names
if prefix == '' then
  names = redis.call('ZRANGE', k_channels(app), 0, -1)
else
  names = redis.call('ZRANGEBYLEX', k_channels(app), '[' .. prefix, '(' .. prefix .. '\255')
end
local out = {}
for _, ch in ipairs(names) do
  table.insert(out, ch)
  table.insert(out, num(redis.call('HGET', k_channel(app, ch), TOTAL)))
  table.insert(out, redis.call('HLEN', k_members(app, ch)))
end
return out
