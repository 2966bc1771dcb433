-- gate.lua: may this worker hand n more messages to the provider now?
-- One call answers for a batch; every worker process of the fleet calls it
-- before it sends, so the limits below hold for the fleet, not per process.
--
-- KEYS[1] rate log   ZSET, one member per message granted in the last
--                    window (score = grant time, ms)
-- KEYS[2] day count  STRING, messages granted on this UTC day
-- KEYS[3] breaker    HASH state (closed|open|half), fails, open_until,
--                    probe_until, hold_until, open_ms
-- ARGV[1] n wanted (>= 1)
-- ARGV[2] per-window limit (0: none)      ARGV[3] window ms (slot hold time)
-- ARGV[4] per-day limit (0: none)         ARGV[5] ms until the next UTC midnight
-- ARGV[6] probe ms (how long a half-open probe may take)
-- ARGV[7] member tag, unique to this call (rate log members are tag:i)
--
-- Reply {granted, wait_ms, reason, fails, state, probe}:
--   granted  messages that may go now (0..n); probe 1 when the one granted
--            message is the half-open probe (its outcome closes or reopens)
--   wait_ms  when granted < n: how long until asking again makes sense
--   reason   why granted < n: "rate" | "day" | "open" | "probe" | "hold"
--            ("" when all n are granted)
-- Time is Redis's own clock (TIME), so workers with skewed clocks agree.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(ARGV[1])
local perWin, win = tonumber(ARGV[2]), tonumber(ARGV[3])
local perDay, toMidnight = tonumber(ARGV[4]), tonumber(ARGV[5])
local probeMs = tonumber(ARGV[6])

local b = redis.call('HMGET', KEYS[3], 'state', 'open_until', 'probe_until', 'hold_until', 'fails')
local state = b[1] or 'closed'
local fails = tonumber(b[5] or '0')
local hold = tonumber(b[4] or '0')
if hold > now then return {0, hold - now, 'hold', fails, state, 0} end

local probe = 0
if state == 'open' then
  local ou = tonumber(b[2] or '0')
  if now < ou then return {0, ou - now, 'open', fails, state, 0} end
  probe = 1
elseif state == 'half' then
  local pu = tonumber(b[3] or '0')
  if now < pu then return {0, math.max(1, math.min(pu - now, 1000)), 'probe', fails, state, 0} end
  probe = 1
end
if probe == 1 then n = 1 end

-- When a limit cuts the batch, reason and wait say which and for how long
-- (also when some of it is granted).
local reason, wait = '', 0
if perWin > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - win)
  local room = perWin - redis.call('ZCARD', KEYS[1])
  if room < n then
    n = math.max(room, 0)
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    reason, wait = 'rate', 1
    if oldest[2] then wait = math.max(1, tonumber(oldest[2]) + win - now) end
  end
  if n <= 0 then return {0, wait, 'rate', fails, state, 0} end
end
if perDay > 0 then
  local room = perDay - tonumber(redis.call('GET', KEYS[2]) or '0')
  if room < n then
    n = math.max(room, 0)
    reason, wait = 'day', math.max(1, toMidnight)
  end
  if n <= 0 then return {0, wait, 'day', fails, state, 0} end
end

if perWin > 0 then
  local args = {}
  for i = 1, n do
    args[#args + 1] = now
    args[#args + 1] = ARGV[7] .. ':' .. i
  end
  redis.call('ZADD', KEYS[1], unpack(args))
  redis.call('PEXPIRE', KEYS[1], win * 2 + 1000)
end
if perDay > 0 then
  redis.call('INCRBY', KEYS[2], n)
  redis.call('EXPIRE', KEYS[2], 2 * 86400)
end
if probe == 1 then
  redis.call('HSET', KEYS[3], 'state', 'half', 'probe_until', now + probeMs)
  redis.call('PEXPIRE', KEYS[3], 86400000)
  state = 'half'
end
if probe == 1 and n < tonumber(ARGV[1]) and reason == '' then
  reason, wait = 'probe', math.min(probeMs, 1000)
end
return {n, wait, reason, fails, state, probe}
