-- ratelimit.lua: the HTTP API's rate limits, for a request that changes
-- nothing else in Redis (reads, and requests answered without Redis).
--
-- KEYS[i]          one counter per limited identity of this request (its
--                  client address, its token subject), for the current window
-- ARGV[i]          the limit of KEYS[i]
-- ARGV[#KEYS + 1]  the counters' TTL in seconds
--
-- Returns 1 when any counter is now over its limit, else 0 (see
-- erpqRateCount in the prelude). An enqueue carries the same check inside
-- add.lua instead, so that it costs one round trip.
if erpqRateCount(1, 1) then
  return 1
end
return 0
