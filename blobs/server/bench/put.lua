-- wrk script: PUT of new 10 KiB blobs, a fresh id for every request.
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  thread_id = tid
  wrk.method = "PUT"
  wrk.body = string.rep("x", 10240)
  wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
end

function request()
  counter = counter + 1
  return wrk.format(nil, string.format("/blobs/bench/p%d_%d%s", thread_id, counter, os.getenv("BENCH_RUN") or ""))
end
