-- report.lua: what the provider answered, for the shared circuit breaker.
--
-- KEYS[1] breaker HASH (see gate.lua)
-- ARGV[1] outcomes in the order they came: 'S' accepted, 'F' a provider
--         failure (connection, timeout, 5xx, 421, authentication)
-- ARGV[2] threshold: consecutive failures that open the circuit
-- ARGV[3] open ms: how long it stays open the first time
-- ARGV[4] longest open ms (each failed probe doubles the time, up to this)
-- ARGV[5] hold ms: the provider asked everybody to wait (429 Retry-After),
--         0 for none
--
-- An accepted message closes the circuit and clears the failure count; a
-- failure counts; the threshold-th consecutive failure opens it; a failure
-- while half-open (the probe failed) opens it again for twice as long.
-- Reply {state, fails, ms until it may close (0 when closed), changed}
-- where changed is "", "opened" or "closed".
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'state', 'fails', 'open_until', 'open_ms', 'hold_until')
local state = b[1] or 'closed'
local fails = tonumber(b[2] or '0')
local openUntil = tonumber(b[3] or '0')
local openMs = tonumber(b[4] or '0')
local threshold, firstOpen, maxOpen = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local was = state
local outcomes = ARGV[1]
for i = 1, #outcomes do
  local c = string.sub(outcomes, i, i)
  if c == 'S' then
    state = 'closed'
    fails = 0
    openMs = 0
  elseif c == 'F' then
    fails = fails + 1
    if state == 'half' then
      openMs = math.min(math.max(openMs * 2, firstOpen), maxOpen)
      state = 'open'
      openUntil = now + openMs
    elseif state == 'closed' and fails >= threshold then
      openMs = firstOpen
      state = 'open'
      openUntil = now + openMs
    end
  end
end
local hold = tonumber(b[5] or '0')
if tonumber(ARGV[5]) > 0 and now + tonumber(ARGV[5]) > hold then hold = now + tonumber(ARGV[5]) end
if state == 'closed' and fails == 0 and hold <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[1], 'state', state, 'fails', fails, 'open_until', openUntil,
             'open_ms', openMs, 'hold_until', hold)
  redis.call('PEXPIRE', KEYS[1], 86400000)
end
local changed = ''
if state == 'open' and was ~= 'open' then changed = 'opened' end
if state == 'closed' and was ~= 'closed' then changed = 'closed' end
local left = 0
if state == 'open' then left = math.max(0, openUntil - now) end
return {state, fails, left, changed}
