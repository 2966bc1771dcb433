-- bull's removeJob: an unlocked job is removed from every structure.
-- KEYS: active, wait, delayed, paused, completed, failed, priority, job,
--       job logs, limiter. ARGV: P, id
-- Returns 1, or 0 if the job is locked (being processed).
local P, id = ARGV[1], ARGV[2]
if rcall("GET", KEYS[8] .. ":lock") then
  return 0
end
rcall("LREM", KEYS[1], 0, id)
rcall("LREM", KEYS[2], 0, id)
rcall("ZREM", KEYS[3], id)
rcall("LREM", KEYS[4], 0, id)
rcall("ZREM", KEYS[5], id)
rcall("ZREM", KEYS[6], id)
rcall("ZREM", KEYS[7], id)
erpqDropDebounce(P, KEYS[8])
rcall("DEL", KEYS[8])
rcall("DEL", KEYS[9])
local index = KEYS[10] .. ":index"
local limitedSet = rcall("HGET", index, id)
if limitedSet then
  rcall("SREM", limitedSet, id)
  rcall("HDEL", index, id)
end
return 1
