-- wrk script: node agents' reports (POST /api/v1/agent/report), as fast as
-- the portal takes them. Each wrk thread speaks for its own share of the
-- nodes (the credentials in $CREDENTIALS, one a line, from
-- server/examples/traffic_fixture.rs), round robin, with cumulative
-- counters that grow by a few hundred megabytes a report, so every report
-- adds real increases to the traffic series. With CLOSE=1 every report
-- comes on a new connection (a new TLS handshake), as from agents whose
-- idle connection the portal closed since their last report.

local threads = 0

function setup(thread)
  thread:set("thread_id", threads)
  threads = threads + 1
end

function init(args)
  local count = tonumber(os.getenv("THREADS") or "1")
  local all = {}
  for line in io.lines(os.getenv("CREDENTIALS")) do
    all[#all + 1] = line
  end
  mine = {}
  for i = 1, #all do
    if (i - 1) % count == thread_id then
      mine[#mine + 1] = { credential = all[i], requests = 0, hit = 0, miss = 0 }
    end
  end
  next_node = 1
  boot = string.format("wrk-%d-%d", thread_id, os.time())
  close = os.getenv("CLOSE") == "1"
end

local body_format = [[{"boot_id":"%s","agent_version":"0.1.0","data_port":80,]] ..
  [["counters":{"requests":%d,"hit_bytes":%d,"miss_bytes":%d,"origin_bytes":%d,"errors":0,]] ..
  [["families":{"windows_update":%d,"office":%d,"xbox":%d,"edge":%d,"other":%d}},]] ..
  [["active_connections":12,"drives":[{"path":"/srv/cache1","used_bytes":400000000000,"quota_bytes":500000000000}],]] ..
  [["serving":true,"problems":[],"bgp":null}]]

function request()
  local node = mine[next_node]
  next_node = next_node % #mine + 1
  node.requests = node.requests + 7
  node.hit = node.hit + 300000000 + math.random(0, 100000000)
  node.miss = node.miss + 20000000 + math.random(0, 20000000)
  local served = node.hit + node.miss
  local wu = math.floor(served * 0.6)
  local office = math.floor(served * 0.15)
  local xbox = math.floor(served * 0.15)
  local edge = math.floor(served * 0.07)
  local body = string.format(body_format, boot, node.requests, node.hit, node.miss, node.miss,
    wu, office, xbox, edge, served - wu - office - xbox - edge)
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. node.credential,
  }
  if close then
    headers["Connection"] = "close"
  end
  return wrk.format("POST", "/api/v1/agent/report", headers, body)
end
