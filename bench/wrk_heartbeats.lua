-- wrk script for the ingest benchmark (bench/ingest.py runs it).
--
--   wrk -t2 -c64 -d20s -s bench/wrk_heartbeats.lua URL -- TOKENS_FILE BATCH SEQ_BASE THREADS
--
-- Each request is one device (`Authorization: Device <token>`), devices taken in turn from
-- this thread's share of TOKENS_FILE (one token a line). A request carries BATCH heartbeats
-- (BATCH = 1: a single object, else an array); each device's seq starts at SEQ_BASE and grows
-- by one per heartbeat, so no heartbeat is a duplicate. Counters grow with seq, gauges move.
-- done() prints one line "WRKJSON {...}" with the counts by status and the latency.

local threads = {}
local next_id = 1

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

local tokens, seqs, headers = {}, {}, {}
local cursor = 0
local batch, nthreads = 1, 1

function init(args)
   local path = args[1]
   batch = tonumber(args[2]) or 1
   local seq_base = tonumber(args[3]) or 0
   nthreads = tonumber(args[4]) or 1
   local index = 0
   for line in io.lines(path) do
      if line ~= "" then
         if index % nthreads == id - 1 then
            table.insert(tokens, line)
            table.insert(seqs, seq_base)
            table.insert(headers, {
               ["Authorization"] = "Device " .. line,
               ["Content-Type"] = "application/json",
            })
         end
         index = index + 1
      end
   end
   ok, s4xx, s400, s401, s429, s503, s5xx, other = 0, 0, 0, 0, 0, 0, 0, 0
end

local function heartbeat(seq, ts)
   return string.format(
      '{"seq":%d,"ts":"%s","status":"ok","metrics":{"run_hours":%.4f,"energy_kwh":%.3f,'
         .. '"pressure_bar":%.2f,"temp_c":%.1f}}',
      seq, ts, seq / 60, seq * 0.25, 6.5 + (seq % 10) * 0.1, 55 + (seq % 13)
   )
end

function request()
   cursor = cursor % #tokens + 1
   local seq = seqs[cursor]
   seqs[cursor] = seq + batch
   local now = os.time()
   local body
   if batch == 1 then
      body = heartbeat(seq, os.date("!%Y-%m-%dT%H:%M:%SZ", now))
   else
      local items = {}
      for i = 1, batch do
         -- store-and-forward: one reading a second, the newest now
         items[i] = heartbeat(seq + i - 1, os.date("!%Y-%m-%dT%H:%M:%SZ", now - (batch - i)))
      end
      body = "[" .. table.concat(items, ",") .. "]"
   end
   return wrk.format("POST", nil, headers[cursor], body)
end

function response(status, _headers, _body)
   if status >= 200 and status < 300 then
      ok = ok + 1
   elseif status == 400 then
      s400 = s400 + 1
   elseif status == 401 then
      s401 = s401 + 1
   elseif status == 429 then
      s429 = s429 + 1
   elseif status == 503 then
      s503 = s503 + 1
   elseif status >= 500 then
      s5xx = s5xx + 1
   elseif status >= 400 then
      s4xx = s4xx + 1
   else
      other = other + 1
   end
end

function done(summary, latency, _requests)
   local names = { "ok", "s400", "s401", "s429", "s503", "s5xx", "s4xx", "other" }
   local totals = {}
   for _, name in ipairs(names) do
      totals[name] = 0
      for _, thread in ipairs(threads) do
         totals[name] = totals[name] + (thread:get(name) or 0)
      end
   end
   local e = summary.errors
   io.write(string.format(
      'WRKJSON {"requests":%d,"duration_us":%d,"ok":%d,'
         .. '"status":{"400":%d,"401":%d,"429":%d,"503":%d,"other_4xx":%d,"other_5xx":%d,"other":%d},'
         .. '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},'
         .. '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"max":%d}}\n',
      summary.requests, summary.duration, totals.ok,
      totals.s400, totals.s401, totals.s429, totals.s503, totals.s4xx, totals.s5xx, totals.other,
      e.connect, e.read, e.write, e.timeout,
      latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max
   ))
end
