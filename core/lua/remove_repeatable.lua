-- bull's removeRepeatable: drops a repeatable's schedule and its pending
-- delayed occurrence.
-- KEYS: repeat, delayed. ARGV: "repeat:<md5>:", repeatKey, P. Returns 0.
local millis = rcall("ZSCORE", KEYS[1], ARGV[2])
if millis then
  local id = ARGV[1] .. millis
  if rcall("ZREM", KEYS[2], id) == 1 then
    rcall("DEL", ARGV[3] .. id)
  end
end
rcall("ZREM", KEYS[1], ARGV[2])
return 0
