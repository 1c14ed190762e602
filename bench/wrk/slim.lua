-- Cycles over the Slim app's routes: a JSON route, a path parameter, a 404.
local paths = { "/api/status", "/api/users/42", "/api/users/7", "/no/such/page" }
local n = 0

request = function()
  n = n + 1
  return wrk.format("GET", paths[(n % #paths) + 1])
end
