-- bull's addLog. KEYS: job, job logs. ARGV: id, row, keep|"".
-- Returns the number of rows, or -1 if the job is gone.
if rcall("EXISTS", KEYS[1]) == 1 then
  local n = rcall("RPUSH", KEYS[2], ARGV[2])
  if ARGV[3] ~= "" then
    local keep = tonumber(ARGV[3])
    rcall("LTRIM", KEYS[2], -keep, -1)
    return math.min(keep, n)
  end
  return n
end
return -1
