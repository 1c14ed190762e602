-- POST /echo with a 4 KiB JSON document (the same body on every request).
local items = {}
local i = 0
local size = 2 -- the closing "]}"
local prefix = '{"items":['
size = size + #prefix
while true do
  local item = string.format('{"id":%d,"name":"item %d","tags":["a","b"]}', i, i)
  if size + #item + 1 > 4096 then break end
  items[#items + 1] = item
  size = size + #item + (i > 0 and 1 or 0)
  i = i + 1
end
local body = prefix .. table.concat(items, ",") .. "]}"
body = body .. string.rep(" ", 4096 - #body)

wrk.method = "POST"
wrk.path = "/echo"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
