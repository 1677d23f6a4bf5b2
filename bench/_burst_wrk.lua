-- wrk script for the burst benchmark (bench/burst.py runs it): bench/wrk_heartbeats.lua's
-- requests, answers and summary, paced to a fixed request rate.
--
--   wrk -t2 -c256 -d600s -s bench/_burst_wrk.lua URL -- TOKENS_FILE BATCH SEQ_BASE THREADS RATE
--
-- RATE is requests per second over all threads. Each thread keeps its own schedule (request n
-- is due at start + n / (RATE / THREADS)); a connection waits until its next slot is due, or
-- sends at once when the thread is behind (the server is slower than the rate, or every
-- connection is waiting for an answer), so the result's request count is what was offered.

local here = debug.getinfo(1, "S").source:sub(2):match("^(.*)/[^/]*$") or "."
dofile(here .. "/wrk_heartbeats.lua")

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } burst_timespec;
int clock_gettime(int clock_id, burst_timespec *tp);
]])
local CLOCK_MONOTONIC = 1
local now_ts = ffi.new("burst_timespec")

local function now_ms()
   ffi.C.clock_gettime(CLOCK_MONOTONIC, now_ts)
   return tonumber(now_ts.tv_sec) * 1000 + tonumber(now_ts.tv_nsec) / 1e6
end

local heartbeat_init = init
local interval_ms, start_ms, slots = 1, nil, 0

function init(args)
   heartbeat_init(args)
   local threads = tonumber(args[4]) or 1
   interval_ms = 1000 * threads / tonumber(args[5])
end

function delay()
   local now = now_ms()
   start_ms = start_ms or now
   slots = slots + 1
   local wait = start_ms + slots * interval_ms - now
   if wait < 1 then
      return 0
   end
   return math.floor(wait)
end
