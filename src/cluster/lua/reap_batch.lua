-- reap_batch: ARGV prefix, me, dead node, batch size → {'more' | 'done' | 'not_claimed',
-- departures...}, each departure five strings:
--   'member_removed', app, channel, user, ''
--   'unsubscribed', app, channel, total left in the cluster ('0': vacated), count number
--   'offline', app, '', user, ''
-- Replays up to a batch of the dead node's records through the functions of lib.lua, members
-- first (so a channel's member_removed precede its vacated), then subscriptions, then users.
-- When nothing is left, deletes the node's keys and its P:reaping entry ('done').
local me, dead, batch = ARGV[2], ARGV[3], tonumber(ARGV[4])
check_node(me)
if redis.call('HGET', k_reaping(), dead) ~= me then
  return { 'not_claimed' }
end
local out = { 'more' }
local function add(kind, app, a, b, c)
  table.insert(out, kind)
  table.insert(out, app)
  table.insert(out, a)
  table.insert(out, b)
  table.insert(out, c or '')
end

local members = redis.call('HRANDFIELD', k_node_members(dead), batch, 'WITHVALUES')
if #members > 0 then
  for i = 1, #members, 2 do
    local app, rest = split(members[i])
    local ch, user
    if rest then ch, user = split(rest) end
    if user then
      local removed = member_leave(app, ch, dead, user, num(members[i + 1]))
      if removed == 1 then add('member_removed', app, ch, user) end
    else
      redis.call('HDEL', k_node_members(dead), members[i])
    end
  end
  return out
end

local channels = redis.call('SRANDMEMBER', k_node_channels(dead), batch)
if #channels > 0 then
  for _, ref in ipairs(channels) do
    local app, ch = split(ref)
    if ch then
      local held = num(redis.call('HGET', k_channel(app, ch), dead))
      local _, total, ended = unsubscribe(app, ch, dead, held)
      if ended > 0 then add('unsubscribed', app, ch, tostring(total), tostring(count_seq())) end
    end
    redis.call('SREM', k_node_channels(dead), ref)
  end
  return out
end

local users = redis.call('HRANDFIELD', k_node_users(dead), batch, 'WITHVALUES')
if #users > 0 then
  for i = 1, #users, 2 do
    local app, user = split(users[i])
    if user then
      local offline = user_offline(app, user, dead, num(users[i + 1]))
      if offline == 1 then add('offline', app, '', user) end
    else
      redis.call('HDEL', k_node_users(dead), users[i])
    end
  end
  return out
end

redis.call('DEL', k_alive(dead), k_node_channels(dead), k_node_members(dead), k_node_users(dead),
  k_node_connections(dead))
redis.call('HDEL', k_reaping(), dead)
return { 'done' }
