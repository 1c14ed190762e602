-- The framework page (Laravel, Symfony): cycles over /posts/1 .. /posts/20 — a route with
-- a parameter, a controller, a template and one database read each.
local n = 0

request = function()
  n = n + 1
  return wrk.format("GET", "/posts/" .. ((n % 20) + 1))
end
