-- departure_hold: ARGV prefix, departure (JSON text), delay in ms → 1
-- Holds a departure (channel_vacated, member_removed) until Redis's clock passes now + delay;
-- any node then claims it with departure_claim, unless an arrival cancelled it first (ZREM of the
-- same member: the channel or member came back within the grace period, anywhere).
local departure, delay = ARGV[2], tonumber(ARGV[3]) or 0
redis.call('ZADD', k_departures(), now_ms() + delay, departure)
return 1
