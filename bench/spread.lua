-- wrk script for the spread run: counts the responses per X-Pid header (under
-- Connection: close, one response is one connection) and prints one line
-- "spread <pid> <count>" per process after wrk's summary.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  pids = {}
end

function response(status, headers, body)
  local p = headers["X-Pid"] or headers["x-pid"] or "none"
  pids[p] = (pids[p] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for p, n in pairs(t:get("pids")) do
      total[p] = (total[p] or 0) + n
    end
  end
  for p, n in pairs(total) do
    io.write(string.format("spread %s %d\n", p, n))
  end
end
