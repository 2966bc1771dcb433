-- bull's global pause/resume: the wait list is renamed to paused (or back),
-- the authoritative meta-paused flag and meta.paused are set or cleared, and
-- the word is published.
-- KEYS: src, dst, meta-paused, channel, meta. ARGV: "paused"|"resumed"
if rcall("EXISTS", KEYS[1]) == 1 then
  rcall("RENAME", KEYS[1], KEYS[2])
end
if ARGV[1] == "paused" then
  rcall("SET", KEYS[3], 1)
  rcall("HSET", KEYS[5], "paused", 1)
else
  rcall("DEL", KEYS[3])
  rcall("HDEL", KEYS[5], "paused")
end
rcall("PUBLISH", KEYS[4], ARGV[1])
return 0
