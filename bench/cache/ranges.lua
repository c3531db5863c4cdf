-- wrk script: GET random 1 MiB ranges (not aligned to slices) of an object
-- of OBJECT_BYTES (default 64 MiB). Same seed for every run and server.
local size = tonumber(os.getenv("OBJECT_BYTES") or "67108864")
local span = tonumber(os.getenv("RANGE_BYTES") or "1048576")
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

function init(args)
  math.randomseed(seed or 1)
end

function request()
  local first = math.random(0, size - span)
  wrk.headers["Range"] = "bytes=" .. first .. "-" .. (first + span - 1)
  return wrk.format("GET")
end

function response(status, headers, body)
  if status ~= 206 then
    io.stderr:write("unexpected status " .. status .. "\n")
  end
end
