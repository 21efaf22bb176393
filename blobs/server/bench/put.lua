-- wrk script: PUT of new 10 KiB blobs, a fresh random id for every request.
-- The ids are 32 random hex digits, like the UUIDs clients use: nearly every upload then
-- lands in a shard directory of its own (the layout shards by the first 1, 3 and 6
-- characters), which the server has to create, as it would for real clients. Sequential ids
-- would share shard directories and hide that cost.
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  -- A different sequence in every thread and every run.
  math.randomseed(os.time() * 1000 + tid)
  wrk.method = "PUT"
  wrk.body = string.rep("x", 10240)
  wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
end

function request()
  local id = {}
  for i = 1, 8 do
    id[i] = string.format("%04x", math.random(0, 0xffff))
  end
  return wrk.format(nil, "/blobs/bench/" .. table.concat(id))
end
