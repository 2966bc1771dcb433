-- Reads a job and works out its state as bull's getState does, in one call.
-- KEYS: job, completed, failed, delayed, active, wait, paused
-- ARGV: id
-- Returns {state, HGETALL} or nil if the job does not exist.
local id = ARGV[1]
if rcall("EXISTS", KEYS[1]) == 0 then
  return nil
end
local state = "stuck"
if rcall("ZSCORE", KEYS[2], id) then
  state = "completed"
elseif rcall("ZSCORE", KEYS[3], id) then
  state = "failed"
elseif rcall("ZSCORE", KEYS[4], id) then
  state = "delayed"
elseif rcall("LPOS", KEYS[5], id) then
  state = "active"
elseif rcall("LPOS", KEYS[6], id) then
  state = "waiting"
elseif rcall("LPOS", KEYS[7], id) then
  state = "paused"
end
return {state, rcall("HGETALL", KEYS[1])}
