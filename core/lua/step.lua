-- One round trip of a worker: finishes the jobs it has done, then fetches
-- and locks up to N new ones. Each finish does exactly what bull's
-- saveStacktrace + moveToFinished / retryJob / moveToDelayed leave behind,
-- and each fetch what moveToActive does (including the rate limiter), so a
-- batch is equivalent to that sequence of bull calls.
-- KEYS: active, wait, priority, stalled, delayed, paused, meta-paused,
--       completed, failed, limiter
-- ARGV: P, token, lockDuration, now, nfetch, explicitId|"", limiterMax|"",
--       limiterDuration, bounceBack "true"|"false", groupKey "true"|"",
--       nfinish, then per finish 9 fields:
--   kind: "c" completed, "f" failed for good, "r" retry now, "d" delayed,
--         "p" postponed (back to delayed without using an attempt: the
--         job hash is left as it is, as bull's moveToDelayed leaves it);
--         upper case when the job hash has a debounce id (deid), so that
--         jobs without one skip that lookup
--   jobId
--   value: returnvalue JSON ("c") or failedReason ("f", "r", "d")
--   keepCount|"" and keepAge|"" ("c", "f": the removeOnX policy)
--   event JSON ("c", "f")
--   stacktrace JSON|"" ("f", "r", "d"; "" for "c")
--   attemptsMade ("f", "r", "d")
--   push command ("r") or delayed score ("d", "p")
-- Returns {codes, fetched, drained}: one code per finish (0 or bull's
-- negative error), a flat list {id1, fields1, id2, fields2, ...} where
-- fields are HMGET name data opts attemptsMade timestamp delay priority
-- progress stalledCounter deid stacktrace, and 1 if the wait list was found
-- empty.
local P, token, lockMs, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local nfetch, explicitId = tonumber(ARGV[5]), ARGV[6]
local limMax, limDur, bounceBack, groupKey = erpqNum(ARGV[7]), tonumber(ARGV[8]), ARGV[9], ARGV[10]
local nfinish = tonumber(ARGV[11])
local activeKey, waitKey, priorityKey, stalledKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local delayedKey, pausedKey, metaPausedKey = KEYS[5], KEYS[6], KEYS[7]

local codes = {}
-- Lock releases, stalled-set removals and additions to the completed set
-- are gathered and applied in bulk: inside one script the final state is
-- the same as applying them job by job, at a fraction of the calls.
local unlock, unstall, doneAdds = {}, {}, {}
local completedKey = KEYS[8]
local function flushDone()
  if #doneAdds > 0 then
    rcall("ZADD", completedKey, unpack(doneAdds))
    doneAdds = {}
  end
end
for i = 0, nfinish - 1 do
  local a = 11 + i * 9
  local kind, jobId, value = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local hasDeid = false
  if kind == "C" or kind == "F" or kind == "R" or kind == "D" or kind == "P" then
    hasDeid = true
    kind = string.lower(kind)
  end
  local keepCount, keepAge, event = erpqNum(ARGV[a + 4]), erpqNum(ARGV[a + 5]), ARGV[a + 6]
  local stack, attempts, extra = ARGV[a + 7], ARGV[a + 8], ARGV[a + 9]
  local jobKey = P .. jobId
  local code = 0
  if rcall("EXISTS", jobKey) == 0 then
    code = -1
  else
    if token ~= "0" then
      local lockKey = jobKey .. ":lock"
      local owner = rcall("GET", lockKey)
      if owner == token then
        unlock[#unlock + 1] = lockKey
        unstall[#unstall + 1] = jobId
      elseif owner then
        code = -6
      else
        code = -2
      end
    end
    if code == 0 and rcall("LREM", activeKey, -1, jobId) < 1 then
      code = -3
    end
  end
  if code == 0 then
    if kind ~= "c" and kind ~= "p" then
      rcall("HMSET", jobKey, "stacktrace", stack, "failedReason", value, "attemptsMade", attempts)
    end
    if kind == "c" or kind == "f" then
      local setKey = completedKey
      local field = "returnvalue"
      if kind == "f" then
        setKey = KEYS[9]
        field = "failedReason"
      end
      if hasDeid then
        erpqDropDebounceIfNoTtl(P, rcall("HGET", jobKey, "deid"))
      end
      if keepCount ~= 0 then
        rcall("HMSET", jobKey, field, value, "finishedOn", now)
        if kind == "c" and keepAge == nil and (keepCount == nil or keepCount < 0) then
          -- Nothing to trim: the add can wait for the bulk ZADD.
          doneAdds[#doneAdds + 1] = now
          doneAdds[#doneAdds + 1] = jobId
        else
          flushDone()
          rcall("ZADD", setKey, now, jobId)
          erpqTrimFinished(P, setKey, tonumber(now), keepAge, keepCount)
        end
      else
        rcall("DEL", jobKey, jobKey .. ":logs")
      end
      rcall("PUBLISH", setKey, event)
    elseif kind == "r" then
      erpqRequeue(P, jobId, extra, waitKey, pausedKey, metaPausedKey, priorityKey)
    else
      local score = tonumber(extra)
      rcall("ZADD", delayedKey, score, jobId)
      rcall("PUBLISH", delayedKey, (score / 0x1000))
    end
  end
  codes[#codes + 1] = code
end
flushDone()
for from = 1, #unlock, 5000 do
  local to = math.min(from + 4999, #unlock)
  rcall("DEL", unpack(unlock, from, to))
  rcall("SREM", stalledKey, unpack(unstall, from, to))
end

-- The rate limiter of bull's moveToActive. Returns true if the job was
-- limited (and moved out of the active list).
local function limited(jobId)
  local limKey = KEYS[10]
  local indexKey = limKey .. ":index"
  if groupKey ~= "" then
    local group = string.match(jobId, "[^:]+$")
    if group ~= nil then
      limKey = limKey .. ":" .. group
    end
  end
  local limitedSet = limKey .. ":limited"
  local delay = 0
  if rcall("SISMEMBER", limitedSet, jobId) == 1 then
    rcall("SREM", limitedSet, jobId)
    rcall("HDEL", indexKey, jobId)
  else
    local pending = rcall("SCARD", limitedSet)
    if pending > 0 then
      delay = ((pending * limDur * 1.1) / limMax) + tonumber(rcall("PTTL", limKey))
    end
  end
  local counter = tonumber(rcall("GET", limKey)) or 0
  if delay == 0 and counter >= limMax then
    delay = tonumber(rcall("PTTL", limKey)) + ((counter - limMax) * limDur) / limMax
  end
  if delay > 0 then
    if bounceBack == "false" then
      local ts = delay + tonumber(now)
      rcall("ZADD", delayedKey, ts * 0x1000 + bit.band(counter, 0xfff), jobId)
      rcall("PUBLISH", delayedKey, ts)
      rcall("SADD", limitedSet, jobId)
      rcall("HSET", indexKey, jobId, limitedSet)
    end
    rcall("LREM", activeKey, 1, jobId)
    return true
  end
  if counter == 0 then
    rcall("PSETEX", limKey, limDur, 1)
  else
    rcall("INCR", limKey)
  end
  return false
end

local fetched = {}
local drained = 0
local activeChan = activeKey .. "@" .. token

local function lockAndRead(jobId)
  local jobKey = P .. jobId
  rcall("SET", jobKey .. ":lock", token, "PX", lockMs)
  rcall("HSET", jobKey, "processedOn", now)
  local fields = rcall("HMGET", jobKey, "name", "data", "opts", "attemptsMade",
    "timestamp", "delay", "priority", "progress", "stalledCounter", "deid", "stacktrace")
  -- Only a prioritized job can be in the priority zset (fields[7] is the
  -- job's priority); ZREM of an absent member changes nothing.
  if fields[7] and fields[7] ~= "0" then
    rcall("ZREM", priorityKey, jobId)
  end
  rcall("PUBLISH", activeChan, jobId)
  fetched[#fetched + 1] = jobId
  fetched[#fetched + 1] = fields
end

local want = nfetch
if want > 0 and explicitId ~= "" then
  -- A blocking pop already moved this job to active.
  rcall("SREM", stalledKey, explicitId)
  want = want - 1
  if not (limMax and limited(explicitId)) then
    lockAndRead(explicitId)
  end
end
if want > 0 and not limMax then
  -- RPOP with a count and one LPUSH leave active exactly as that many
  -- RPOPLPUSH calls would.
  local ids = rcall("RPOP", waitKey, want)
  if ids then
    rcall("LPUSH", activeKey, unpack(ids))
    for _, jobId in ipairs(ids) do
      lockAndRead(jobId)
    end
  end
  if not ids or #ids < want then
    rcall("PUBLISH", P .. "drained", "")
    drained = 1
  end
elseif want > 0 then
  for k = 1, want do
    local jobId = rcall("RPOPLPUSH", waitKey, activeKey)
    if not jobId then
      rcall("PUBLISH", P .. "drained", "")
      drained = 1
      break
    end
    if limited(jobId) then
      break
    end
    lockAndRead(jobId)
  end
end
return {codes, fetched, drained}
