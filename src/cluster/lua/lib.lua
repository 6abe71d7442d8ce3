-- herald cluster: the functions every script shares. Each script is this file followed by its
-- own body (scripts.rs joins them), so a dead node's departures, replayed by reap_batch.lua, go
-- through the very functions a live node's leave/member_leave/user_offline use.
--
-- ARGV[1] is always the key prefix. Key names mirror keys.rs (a test compares them). App ids
-- arrive escaped (no ':'), channel names hold no ':', so node records split at the first ':'s.
-- Every count changed here is also recorded per node, so a dead node's share can be replayed.

local P = ARGV[1]
local TOTAL = 'total'

local function k_nodes() return P .. ':nodes' end
local function k_reaping() return P .. ':reaping' end
local function k_reaped() return P .. ':reaped' end
local function k_alive(node) return P .. ':node:' .. node .. ':alive' end
local function k_node_channels(node) return P .. ':node:' .. node .. ':channels' end
local function k_node_members(node) return P .. ':node:' .. node .. ':members' end
local function k_node_users(node) return P .. ':node:' .. node .. ':users' end
local function k_node_connections(node) return P .. ':node:' .. node .. ':connections' end
local function k_channels(app) return P .. ':app:' .. app .. ':channels' end
local function k_channel(app, ch) return P .. ':app:' .. app .. ':channel:' .. ch end
local function k_members(app, ch) return P .. ':app:' .. app .. ':members:' .. ch end
local function k_info(app, ch) return P .. ':app:' .. app .. ':info:' .. ch end
local function k_users(app) return P .. ':app:' .. app .. ':users' end
local function k_departures() return P .. ':departures' end
local function k_webhooks() return P .. ':webhooks' end
local function k_count_seq() return P .. ':count_seq' end

-- Numbers a change of a channel's subscription count (cluster-wide, increasing): nodes keep
-- the newest count they hear of, whatever order the announcements arrive in.
local function count_seq() return redis.call('INCR', k_count_seq()) end
local function k_bus() return P .. ':bus' end

local function num(v)
  return tonumber(v or '0') or 0
end

-- Refuses to change anything for a node that is not registered: a node declared dead (it was
-- reaped; its records are gone) or one Redis has forgotten (restarted without its data).
local function check_node(node)
  if redis.call('SISMEMBER', k_nodes(), node) == 1 then
    return
  end
  if redis.call('ZSCORE', k_reaped(), node) then
    error({ err = 'HERALD_DEAD node ' .. node .. ' was declared dead' })
  end
  error({ err = 'HERALD_UNKNOWN node ' .. node .. ' is not registered' })
end

-- Milliseconds of Redis's clock.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Occupancy: `node` has `n` more subscriptions to `ch`.
-- Returns occupied (1 if the cluster went from 0 to some), the new total.
local function subscribe(app, ch, node, n)
  local key = k_channel(app, ch)
  redis.call('HINCRBY', key, node, n)
  local total = redis.call('HINCRBY', key, TOTAL, n)
  redis.call('SADD', k_node_channels(node), app .. ':' .. ch)
  if total == n then
    redis.call('ZADD', k_channels(app), 0, ch)
    return 1, total
  end
  return 0, total
end

-- Occupancy: up to `n` of `node`'s subscriptions to `ch` end (never more than it holds).
-- Returns vacated (1 if the cluster went to 0), the new total, how many ended.
local function unsubscribe(app, ch, node, n)
  local key = k_channel(app, ch)
  local held = num(redis.call('HGET', key, node))
  if n > held then n = held end
  if n <= 0 then
    return 0, num(redis.call('HGET', key, TOTAL)), 0
  end
  if n == held then
    redis.call('HDEL', key, node)
    redis.call('SREM', k_node_channels(node), app .. ':' .. ch)
  else
    redis.call('HINCRBY', key, node, -n)
  end
  local total = redis.call('HINCRBY', key, TOTAL, -n)
  if total <= 0 then
    redis.call('DEL', key)
    redis.call('ZREM', k_channels(app), ch)
    return 1, 0, n
  end
  return 0, total, n
end

-- Presence: a connection of `user` on `node` joins `ch`, unless the channel already has `max`
-- other members. Returns 1 (member added: its first connection in the cluster), 0 (another
-- connection of a member) or -1 (full, nothing changed); and the member count.
local function member_join(app, ch, node, user, info, max)
  local members = k_members(app, ch)
  local known = redis.call('HEXISTS', members, user) == 1
  if not known and redis.call('HLEN', members) >= max then
    return -1, redis.call('HLEN', members)
  end
  redis.call('HINCRBY', members, user, 1)
  redis.call('HSET', k_info(app, ch), user, info)
  redis.call('HINCRBY', k_node_members(node), app .. ':' .. ch .. ':' .. user, 1)
  local added = 0
  if not known then added = 1 end
  return added, redis.call('HLEN', members)
end

-- Presence: up to `n` of `user`'s connections on `node` leave `ch`. Returns 1 if that was the
-- member's last connection in the cluster (member removed), and the member count.
local function member_leave(app, ch, node, user, n)
  local members = k_members(app, ch)
  local record = k_node_members(node)
  local field = app .. ':' .. ch .. ':' .. user
  local held = num(redis.call('HGET', record, field))
  if n > held then n = held end
  if n <= 0 then
    return 0, redis.call('HLEN', members)
  end
  if n == held then
    redis.call('HDEL', record, field)
  else
    redis.call('HINCRBY', record, field, -n)
  end
  if redis.call('HINCRBY', members, user, -n) <= 0 then
    redis.call('HDEL', members, user)
    redis.call('HDEL', k_info(app, ch), user)
    return 1, redis.call('HLEN', members)
  end
  return 0, redis.call('HLEN', members)
end

-- Users: `node` has `n` more signed-in connections of `user`. Returns 1 if the user came
-- online (its first connection in the cluster), and its connection count.
local function user_online(app, user, node, n)
  redis.call('HINCRBY', k_node_users(node), app .. ':' .. user, n)
  local count = redis.call('HINCRBY', k_users(app), user, n)
  if count == n then
    return 1, count
  end
  return 0, count
end

-- Users: up to `n` of `user`'s connections on `node` sign out. Returns 1 if the user went
-- offline (its last connection in the cluster), and its connection count.
local function user_offline(app, user, node, n)
  local record = k_node_users(node)
  local field = app .. ':' .. user
  local held = num(redis.call('HGET', record, field))
  if n > held then n = held end
  if n <= 0 then
    return 0, num(redis.call('HGET', k_users(app), user))
  end
  if n == held then
    redis.call('HDEL', record, field)
  else
    redis.call('HINCRBY', record, field, -n)
  end
  local count = redis.call('HINCRBY', k_users(app), user, -n)
  if count <= 0 then
    redis.call('HDEL', k_users(app), user)
    return 1, 0
  end
  return 0, count
end

-- Splits a node record field at its first ':'.
local function split(ref)
  return string.match(ref, '^([^:]*):(.*)$')
end
