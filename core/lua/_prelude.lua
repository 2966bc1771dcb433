-- Shared helpers, prepended by erpq_scripts.c to every other script in this
-- folder. They implement the parts of bull 4.16.5's Redis semantics that
-- several operations share, so that every script leaves the same state a
-- bull script would. P is always the queue prefix ("bull:<queue>:").
local rcall = redis.call

-- The list new or returned jobs go to: paused while the queue is globally
-- paused (meta-paused exists), wait otherwise.
local function erpqTarget(metaPausedKey, waitKey, pausedKey)
  if rcall("EXISTS", metaPausedKey) == 1 then
    return pausedKey
  end
  return waitKey
end

-- Inserts a prioritized job so that the tail of the list holds prioritized
-- jobs in ascending priority (FIFO within a level), ahead of priority 0.
local function erpqPushPriority(priorityKey, priority, jobId, target)
  rcall("ZADD", priorityKey, priority, jobId)
  local n = rcall("ZCOUNT", priorityKey, 0, priority)
  local len = rcall("LLEN", target)
  local e = rcall("LINDEX", target, len - (n - 1))
  if e then
    rcall("LINSERT", target, "BEFORE", e, jobId)
  else
    rcall("RPUSH", target, jobId)
  end
end

-- Deletes the debounce key of a finished job unless it still has a TTL.
local function erpqDropDebounceIfNoTtl(P, deid)
  if deid then
    local k = P .. "de:" .. deid
    local ttl = rcall("PTTL", k)
    if ttl == 0 or ttl == -1 then
      rcall("DEL", k)
    end
  end
end

-- Deletes the debounce key of a removed job.
local function erpqDropDebounce(P, jobKey)
  local deid = rcall("HGET", jobKey, "deid")
  if deid then
    rcall("DEL", P .. "de:" .. deid)
  end
end

local function erpqDeleteJobs(P, ids)
  for _, id in ipairs(ids) do
    rcall("DEL", P .. id, P .. id .. ":logs")
  end
end

-- Applies a keep-jobs policy to a finished set after an insertion at time
-- ts: maxAge in seconds (or nil) and maxCount (nil or -1 keeps all).
local function erpqTrimFinished(P, setKey, ts, maxAge, maxCount)
  if maxAge ~= nil then
    local start = ts - maxAge * 1000
    erpqDeleteJobs(P, rcall("ZREVRANGEBYSCORE", setKey, start, "-inf"))
    rcall("ZREMRANGEBYSCORE", setKey, "-inf", start)
  end
  if maxCount ~= nil and maxCount > 0 then
    erpqDeleteJobs(P, rcall("ZREVRANGE", setKey, maxCount, -1))
    rcall("ZREMRANGEBYRANK", setKey, 0, -(maxCount + 1))
  end
end

-- Puts a job back on the queue (wait or paused) honouring its priority.
local function erpqRequeue(P, jobId, pushCmd, waitKey, pausedKey, metaPausedKey, priorityKey)
  local target = erpqTarget(metaPausedKey, waitKey, pausedKey)
  local priority = tonumber(rcall("HGET", P .. jobId, "priority")) or 0
  if priority == 0 then
    rcall(pushCmd, target, jobId)
  else
    erpqPushPriority(priorityKey, priority, jobId, target)
  end
end

local function erpqNum(s)
  if s == nil or s == "" then return nil end
  return tonumber(s)
end

-- The HTTP API's fixed-window request counters (keys "<prefix>:erpq:rl:...";
-- not part of bull's protocol). Counts one request on each of
-- KEYS[first..#KEYS], whose limits are ARGV[at..] in the same order, followed
-- by the counters' TTL in seconds; a new counter gets the TTL. Returns true
-- when any counter is now over its limit (the request is counted anyway).
local function erpqRateCount(first, at)
  local n = #KEYS - first + 1
  local ttl = ARGV[at + n]
  local over = false
  for i = 0, n - 1 do
    local key = KEYS[first + i]
    local c = rcall("INCR", key)
    if c == 1 then
      rcall("EXPIRE", key, ttl)
    end
    if c > tonumber(ARGV[at + i]) then
      over = true
    end
  end
  return over
end
