-- wrk script: every request asks steering for a random subscriber inside
-- 16.0.0.0/4, the space the fixture fills with /24 blocks.
local counter = 0
request = function()
  counter = counter + 1
  local a = math.random(16, 31)
  local b = math.random(0, 255)
  local c = math.random(0, 255)
  local d = math.random(1, 254)
  return wrk.format("GET", "/api/v1/steer?client=" .. a .. "." .. b .. "." .. c .. "." .. d)
end
