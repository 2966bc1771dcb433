-- bull's cleanJobsInSet: removes unlocked jobs older than a time from one
-- state, at most limit of them (0 = all).
-- KEYS: set, priority, limiter. ARGV: P, maxTimestamp, limit, set name
-- Returns the removed ids.
local setKey, priorityKey, limiterKey = KEYS[1], KEYS[2], KEYS[3]
local P, maxTs, limit, setName = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local isList = setName == "wait" or setName == "active" or setName == "paused"
local function byScore()
  return not isList and limit > 0
end
local function fetch(s, e)
  if isList then
    return rcall("LRANGE", setKey, s, e)
  elseif byScore() then
    return rcall("ZRANGEBYSCORE", setKey, 0, maxTs, "LIMIT", 0, limit)
  end
  return rcall("ZRANGE", setKey, s, e)
end
local s, e = 0, -1
if limit > 0 then
  s, e = -limit, -1
end
local ids = fetch(s, e)
local deleted = {}
local count = 0
local ts
while (limit <= 0 or count < limit) and next(ids, nil) ~= nil do
  local len = #ids
  for i, id in ipairs(ids) do
    if limit > 0 and count >= limit then
      break
    end
    local jobKey = P .. id
    if rcall("EXISTS", jobKey .. ":lock") == 0 then
      -- As in bull, ts keeps the value of an earlier job when a job has
      -- none of the three fields, and is compared as a string.
      for _, v in ipairs(rcall("HMGET", jobKey, "finishedOn", "processedOn", "timestamp")) do
        if v then
          ts = v
          break
        end
      end
      if not ts or ts < maxTs then
        if isList then
          rcall("LSET", setKey, e - len + i, "")
        else
          rcall("ZREM", setKey, id)
        end
        rcall("ZREM", priorityKey, id)
        if setName ~= "completed" and setName ~= "failed" then
          erpqDropDebounce(P, jobKey)
        end
        rcall("DEL", jobKey, jobKey .. ":logs")
        local index = limiterKey .. ":index"
        local limitedSet = rcall("HGET", index, id)
        if limitedSet then
          rcall("SREM", limitedSet, id)
          rcall("HDEL", index, id)
        end
        count = count + 1
        deleted[#deleted + 1] = id
      end
    end
  end
  if limit <= 0 or byScore() then
    break
  end
  if count < limit then
    s, e = s - limit, e - limit
    ids = fetch(s, e)
  end
end
if isList then
  rcall("LREM", setKey, 0, "")
end
return deleted
