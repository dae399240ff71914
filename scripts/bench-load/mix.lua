-- wrk's script for scripts/bench load: a mix of what the web app asks, over many users.
--
--   wrk -t2 -c100 -d30s -s mix.lua http://127.0.0.1:3000 -- DATA [SIZE]
--
-- DATA has one line per user, `TOKEN FILE_ID,FILE_ID,... SHARE_PATH` (load_seed's output).
-- Each request is, for a user picked at random:
--   30% list       GET /v1/files
--   20% search     GET /v1/files?q=WORD (the first letters of a dish the seeded names hold)
--   15% grant      POST /v1/uploads for a SIZE-byte JPEG (the small corpus image)
--   20% download   GET /v1/files/{id}/download (one of the user's READY files)
--   15% share      GET /v1/shares/{token} without login (answers a redirect; not followed)
-- Every status is counted, and the answers of each 10 s; `done` prints one line, `RESULT {json}`:
-- requests, seconds, latency percentiles (ms), statuses, wrk's socket errors, answers per 10 s
-- (by the wall clock's 10 s, so the first and last are partial), the first few error answers.

local users = {}
local words = { "fala", "humm", "shaw", "tabb", "kibb", "mana", "fatt", "bakl" }
local size = 9575
local threads = {}

-- Per thread (wrk copies these back in `done`).
statuses = {}
samples = {}
per_10s = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  local path = args[1] or error("mix.lua: the data file is its first argument")
  size = tonumber(args[2] or size)
  for line in io.lines(path) do
    local token, ids, share = line:match("^(%S+) (%S+) (%S+)$")
    if token then
      local files = {}
      for id in ids:gmatch("[^,]+") do
        table.insert(files, id)
      end
      table.insert(users, { auth = { ["Authorization"] = "Bearer " .. token }, files = files, share = share })
    end
  end
  if #users == 0 then
    error("mix.lua: no users in " .. path)
  end
  math.randomseed(os.time() * 1000 + (id or 0))
end

local json_headers = {}

function request()
  local u = users[math.random(#users)]
  local r = math.random(100)
  if r <= 30 then
    return wrk.format("GET", "/v1/files", u.auth)
  elseif r <= 50 then
    return wrk.format("GET", "/v1/files?q=" .. words[math.random(#words)], u.auth)
  elseif r <= 65 then
    for k, v in pairs(u.auth) do
      json_headers[k] = v
    end
    json_headers["Content-Type"] = "application/json"
    local body = string.format('{"filename":"dish %d.jpg","contentType":"image/jpeg","size":%d}', math.random(1e6), size)
    return wrk.format("POST", "/v1/uploads", json_headers, body)
  elseif r <= 85 then
    return wrk.format("GET", "/v1/files/" .. u.files[math.random(#u.files)] .. "/download", u.auth)
  else
    return wrk.format("GET", u.share)
  end
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  local slot = math.floor(os.time() / 10)
  per_10s[slot] = (per_10s[slot] or 0) + 1
  if (status >= 400 and status ~= 429) and #samples < 5 then
    table.insert(samples, status .. " " .. string.sub(body or "", 1, 200))
  end
end

local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

function done(summary, latency, requests)
  local merged, errors, slots, first, last = {}, {}, {}, nil, nil
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("statuses")) do
      merged[status] = (merged[status] or 0) + n
    end
    for slot, n in pairs(t:get("per_10s")) do
      slots[slot] = (slots[slot] or 0) + n
      first, last = math.min(first or slot, slot), math.max(last or slot, slot)
    end
    for _, s in ipairs(t:get("samples")) do
      table.insert(errors, quote(s))
    end
  end
  local parts = {}
  for status, n in pairs(merged) do
    table.insert(parts, string.format('"%d":%d', status, n))
  end
  local counts = {}
  for slot = first or 0, last or -1 do
    table.insert(counts, tostring(slots[slot] or 0))
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"seconds":%.3f,"p50_ms":%.2f,"p95_ms":%.2f,"p99_ms":%.2f,"max_ms":%.2f,'
      .. '"statuses":{%s},"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},"per_10s":[%s],'
      .. '"error_samples":[%s]}\n',
    summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1e3, latency:percentile(95) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3,
    table.concat(parts, ","), e.connect, e.read, e.write, e.timeout, table.concat(counts, ","),
    table.concat(errors, ",")))
end
