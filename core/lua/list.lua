-- Lists the jobs of one state, newest first (bull's getJobs for one type),
-- reading each job hash in the same call. With a school filter (the HTTP
-- API's tenants), only jobs whose data.schoolId equals it are listed, and
-- at most scanMax entries of the state are looked at.
-- KEYS: the state's structure (wait, paused or active list; delayed,
--       completed or failed zset)
-- ARGV: P (job key prefix), "list"|"zset", state name, limit, school|"",
--       scanMax
-- Returns a flat list {id1, {state, HGETALL1}, id2, {state, HGETALL2}, ...}
-- (the element shape of state.lua's answer, so one parser reads both).
local P, kind, state = ARGV[1], ARGV[2], ARGV[3]
local limit, school, scanMax = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local out = {}
local n, start, batch = 0, 0, 200
while n < limit and start < scanMax do
  local ids
  if kind == "list" then
    ids = rcall("LRANGE", KEYS[1], start, start + batch - 1)
  else
    ids = rcall("ZREVRANGE", KEYS[1], start, start + batch - 1)
  end
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    local h = rcall("HGETALL", P .. id)
    local ok = #h > 0
    if ok and school ~= "" then
      ok = false
      for i = 1, #h, 2 do
        if h[i] == "data" then
          local decoded, d = pcall(cjson.decode, h[i + 1])
          if decoded and type(d) == "table" and d.schoolId ~= nil and
              string.format("%.0f", tonumber(d.schoolId) or -1) == school then
            ok = true
          end
        end
      end
    end
    if ok then
      out[#out + 1] = id
      out[#out + 1] = {state, h}
      n = n + 1
      if n >= limit then break end
    end
  end
  start = start + batch
end
return out
