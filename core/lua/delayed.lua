-- bull's updateDelaySet: moves up to 1000 due delayed jobs to the queue and
-- announces the next due time.
-- KEYS: delayed, active, wait, priority, paused, meta-paused
-- ARGV: P, now, token
-- Returns the next score (a string) or nil.
local P = ARGV[1]
local jobs = rcall("ZRANGEBYSCORE", KEYS[1], 0, tonumber(ARGV[2]) * 0x1000, "LIMIT", 0, 1000)
if #jobs > 0 then
  rcall("ZREM", KEYS[1], unpack(jobs))
  local target = erpqTarget(KEYS[6], KEYS[3], KEYS[5])
  for _, id in ipairs(jobs) do
    rcall("LREM", KEYS[2], 0, id)
    local priority = tonumber(rcall("HGET", P .. id, "priority")) or 0
    if priority == 0 then
      rcall("LPUSH", target, id)
    else
      erpqPushPriority(KEYS[4], priority, id, target)
    end
    rcall("PUBLISH", KEYS[3] .. "ing@" .. ARGV[3], id)
    rcall("HSET", P .. id, "delay", 0)
  end
end
local nextScore = rcall("ZRANGE", KEYS[1], 0, 0, "WITHSCORES")[2]
if nextScore ~= nil then
  rcall("PUBLISH", KEYS[1], nextScore / 0x1000)
end
return nextScore
