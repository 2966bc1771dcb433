-- bull's moveStalledJobsToWait: at most one check per stalledInterval for
-- the whole fleet. Jobs marked at the previous check that are still active
-- and have no lock go back to the front of the line, or fail once they have
-- stalled more than maxStalledCount times; then every active job is marked.
-- KEYS: stalled, wait, active, failed, stalled-check, meta-paused, paused
-- ARGV: maxStalledCount, P, now, stalledInterval
-- Returns {failedIds, stalledIds}.
if rcall("EXISTS", KEYS[5]) == 1 then
  return {{}, {}}
end
rcall("SET", KEYS[5], ARGV[3], "PX", ARGV[4])
local P, now = ARGV[2], tonumber(ARGV[3])
local maxStalled = tonumber(ARGV[1])
local failed, stalled = {}, {}
local marked = rcall("SMEMBERS", KEYS[1])
if #marked > 0 then
  rcall("DEL", KEYS[1])
  for _, id in ipairs(marked) do
    local jobKey = P .. id
    if rcall("EXISTS", jobKey .. ":lock") == 0 and rcall("LREM", KEYS[3], 1, id) > 0 then
      local n = rcall("HINCRBY", jobKey, "stalledCounter", 1)
      if n > maxStalled then
        local attrs = rcall("HMGET", jobKey, "opts", "deid")
        local ok, opts = pcall(cjson.decode, attrs[1] or "{}")
        if not ok or type(opts) ~= "table" then opts = {} end
        rcall("ZADD", KEYS[4], ARGV[3], id)
        rcall("HMSET", jobKey, "failedReason", "job stalled more than allowable limit",
          "finishedOn", ARGV[3])
        erpqDropDebounceIfNoTtl(P, attrs[2])
        rcall("PUBLISH", KEYS[4], '{"jobId":"' .. id .. '", "val": "job stalled more than maxStalledCount"}')
        local rof = opts["removeOnFail"]
        if type(rof) == "number" then
          erpqTrimFinished(P, KEYS[4], now, nil, rof)
          if rof == 0 then
            -- bull trims with ZREMRANGEBYRANK 0 -1 here: the whole set goes.
            erpqDeleteJobs(P, rcall("ZRANGE", KEYS[4], 0, -1))
            rcall("DEL", KEYS[4])
          end
        elseif type(rof) == "boolean" then
          if rof then
            rcall("DEL", jobKey, jobKey .. ":logs")
            rcall("ZREM", KEYS[4], id)
          end
        elseif type(rof) == "table" then
          erpqTrimFinished(P, KEYS[4], now, rof["age"], rof["count"])
        end
        failed[#failed + 1] = id
      else
        rcall("RPUSH", erpqTarget(KEYS[6], KEYS[2], KEYS[7]), id)
        rcall("PUBLISH", KEYS[1] .. "@", id)
        stalled[#stalled + 1] = id
      end
    end
  end
end
local active = rcall("LRANGE", KEYS[3], 0, -1)
for from = 1, #active, 7000 do
  rcall("SADD", KEYS[1], unpack(active, from, math.min(from + 6999, #active)))
end
return {failed, stalled}
