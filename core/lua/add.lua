-- Adds one or more jobs, as bull's addJob does for each of them in turn.
-- KEYS: wait, paused, meta-paused, id, delayed, priority, repeat
-- ARGV: P, token, count, then per job 12 fields:
--   customId|"", name, data, opts JSON, timestamp, delay, dueTs|0, priority,
--   "LPUSH"|"RPUSH", debounce key|"", debounce id|"", debounce ttl|"",
-- and after the jobs, optionally: mode, repeatKey, repeatMillis. Mode "add"
-- (Queue.add of a repeatable) registers repeatKey in the repeat zset at
-- repeatMillis; mode "next" (a worker scheduling the next occurrence) does
-- so, and adds the jobs, only if the repeatable is still registered.
-- Returns the list of ids (the existing id for a duplicate or debounced add),
-- or an empty list if the repeatable was removed. A negative count (erpq's
-- job families adding jobs from a handler) asks for {ids, added}: added[i]
-- is 1 when job i was added now and 0 when it already existed (a custom id
-- seen before, or debounced).
--
-- Rate guard (erpq's HTTP API, not bull): KEYS beyond the 7th are request
-- counters, and the last #KEYS - 6 ARGV are their limits then their TTL.
-- When any counter goes over its limit nothing is added and the script
-- answers an error whose code is ERPQ_RATE_LIMITED.
if #KEYS > 7 and erpqRateCount(8, #ARGV - (#KEYS - 7)) then
  return redis.error_reply("ERPQ_RATE_LIMITED over the rate limit")
end
local P, token, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
local report = n < 0
if report then n = -n end
local added = {}
local base = 3
local repIdx = base + n * 12 + 1
local mode = ARGV[repIdx]
if mode == "add" or mode == "next" then
  if mode == "next" and not rcall("ZSCORE", KEYS[7], ARGV[repIdx + 1]) then
    return {}
  end
  rcall("ZADD", KEYS[7], ARGV[repIdx + 2], ARGV[repIdx + 1])
end
local ids = {}
for j = 0, n - 1 do
  local a = base + j * 12
  local customId, name, data, opts = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local ts, delay, due, prio, push = ARGV[a + 5], ARGV[a + 6], tonumber(ARGV[a + 7]), ARGV[a + 8], ARGV[a + 9]
  local deKey, deId, deTtl = ARGV[a + 10], ARGV[a + 11], ARGV[a + 12]
  local counter = rcall("INCR", KEYS[4])
  local jobId
  local done = false
  if customId == "" then
    jobId = tostring(counter)
  else
    jobId = customId
    if rcall("EXISTS", P .. jobId) == 1 then
      rcall("PUBLISH", P .. "duplicated@" .. token, jobId)
      done = true
    end
  end
  if not done and deId ~= "" then
    local set
    if deTtl ~= "" then
      set = rcall("SET", deKey, jobId, "PX", deTtl, "NX")
    else
      set = rcall("SET", deKey, jobId, "NX")
    end
    if not set then
      jobId = rcall("GET", deKey)
      rcall("PUBLISH", P .. "debounced@" .. token, jobId)
      done = true
    end
  end
  if not done then
    local key = P .. jobId
    if deId ~= "" then
      rcall("HMSET", key, "name", name, "data", data, "opts", opts, "timestamp", ts,
        "delay", delay, "priority", prio, "deid", deId)
    else
      rcall("HMSET", key, "name", name, "data", data, "opts", opts, "timestamp", ts,
        "delay", delay, "priority", prio)
    end
    if due ~= 0 then
      rcall("ZADD", KEYS[5], due * 0x1000 + bit.band(counter, 0xfff), jobId)
      rcall("PUBLISH", KEYS[5], due)
    else
      local target = erpqTarget(KEYS[3], KEYS[1], KEYS[2])
      local p = tonumber(prio)
      if p == 0 then
        rcall(push, target, jobId)
      else
        erpqPushPriority(KEYS[6], p, jobId, target)
      end
      rcall("PUBLISH", KEYS[1] .. "ing@" .. token, jobId)
    end
  end
  ids[#ids + 1] = jobId
  added[#added + 1] = done and 0 or 1
end
if report then return {ids, added} end
return ids
