-- ratelimit.lua: the HTTP API's fixed-window request counters (not part of
-- bull's protocol; the keys live under "<prefix>:erpq:rl:").
--
-- KEYS[i]          one counter per limited identity of this request (its
--                  client address, its token subject), for the current window
-- ARGV[i]          the limit of KEYS[i]
-- ARGV[#KEYS + 1]  the counters' TTL in seconds
--
-- Counts the request on every key (a new counter gets the TTL) and returns 1
-- when any counter is now over its limit, else 0. One script instead of an
-- INCR/EXPIRE pair per key: one command, and no counter without a TTL.
local over = 0
local ttl = ARGV[#KEYS + 1]
for i = 1, #KEYS do
  local n = rcall("INCR", KEYS[i])
  if n == 1 then
    rcall("EXPIRE", KEYS[i], ttl)
  end
  if n > tonumber(ARGV[i]) then
    over = 1
  end
end
return over
