-- Renews the locks of several jobs at once, each as bull's extendLock: only
-- a lock still holding our token is extended (a lost lock is never taken
-- back), and the job is removed from the stalled set.
-- KEYS: stalled. ARGV: P, token, lockDuration, id1, id2, ...
-- Returns one 1 (extended) or 0 (lost) per id.
local P, token, ms = ARGV[1], ARGV[2], ARGV[3]
local out = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local lockKey = P .. id .. ":lock"
  if rcall("GET", lockKey) == token then
    rcall("SET", lockKey, token, "PX", ms)
    rcall("SREM", KEYS[1], id)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
