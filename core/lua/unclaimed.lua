-- Returns a job that a blocking pop moved to active but that we will not
-- process (the worker is closing) to the front of the wait list. Only a job
-- with no lock is touched: nobody has started it.
-- KEYS: active, wait, paused, meta-paused. ARGV: P, id. Returns 1 or 0.
local id = ARGV[2]
if rcall("EXISTS", ARGV[1] .. id .. ":lock") == 1 then
  return 0
end
if rcall("LREM", KEYS[1], -1, id) > 0 then
  rcall("RPUSH", erpqTarget(KEYS[4], KEYS[2], KEYS[3]), id)
  return 1
end
return 0
