-- Hands jobs we still hold back to the queue when the worker shuts down, so
-- that they run again at once instead of waiting for the stalled check. A
-- job is handed back only while its lock still holds our token; it goes to
-- the front of the line (RPUSH, as the stalled check does), its lock is
-- released, and a global:stalled-style event is not sent (nothing stalled).
-- KEYS: active, wait, paused, meta-paused, stalled, priority
-- ARGV: P, token, id1, id2, ...
-- Returns one 1 (handed back) or 0 (lock lost or not active) per id.
local P, token = ARGV[1], ARGV[2]
local out = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local jobKey = P .. id
  local ok = 0
  if rcall("EXISTS", jobKey) == 1 and rcall("GET", jobKey .. ":lock") == token then
    if rcall("LREM", KEYS[1], -1, id) > 0 then
      rcall("DEL", jobKey .. ":lock")
      rcall("SREM", KEYS[5], id)
      local target = erpqTarget(KEYS[4], KEYS[2], KEYS[3])
      local priority = tonumber(rcall("HGET", jobKey, "priority")) or 0
      if priority == 0 then
        rcall("RPUSH", target, id)
      else
        erpqPushPriority(KEYS[6], priority, id, target)
      end
      ok = 1
    end
  end
  out[#out + 1] = ok
end
return out
