-- bull's updateProgress. KEYS: job, progress channel.
-- ARGV: progress JSON, event JSON. Returns 0 or -1.
if rcall("EXISTS", KEYS[1]) == 1 then
  rcall("HSET", KEYS[1], "progress", ARGV[1])
  rcall("PUBLISH", KEYS[2], ARGV[2])
  return 0
end
return -1
