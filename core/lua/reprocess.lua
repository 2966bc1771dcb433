-- bull's reprocessJob (job.retry()): a finished job goes back to the queue.
-- KEYS: job, lock, state set, wait, meta-paused, paused
-- ARGV: id, push command, token, now
-- Returns 1, 0 (no job), -1 (locked) or -2 (not in that state).
if rcall("EXISTS", KEYS[1]) == 0 then
  return 0
end
if rcall("EXISTS", KEYS[2]) == 1 then
  return -1
end
rcall("HDEL", KEYS[1], "finishedOn", "processedOn", "failedReason")
rcall("HSET", KEYS[1], "retriedOn", ARGV[4])
if rcall("ZREM", KEYS[3], ARGV[1]) ~= 1 then
  return -2
end
rcall(ARGV[2], erpqTarget(KEYS[5], KEYS[4], KEYS[6]), ARGV[1])
rcall("PUBLISH", KEYS[4] .. "ing@" .. ARGV[3], ARGV[1])
return 1
