-- bull's promote: a delayed job goes to the queue now.
-- KEYS: delayed, wait, paused, meta-paused, priority. ARGV: P, id, token
-- Returns 0, or -1 if the job was not delayed.
local P, id = ARGV[1], ARGV[2]
if rcall("ZREM", KEYS[1], id) == 1 then
  erpqRequeue(P, id, "LPUSH", KEYS[2], KEYS[3], KEYS[4], KEYS[5])
  rcall("PUBLISH", KEYS[2] .. "ing@" .. ARGV[3], id)
  rcall("HSET", P .. id, "delay", 0)
  return 0
end
return -1
