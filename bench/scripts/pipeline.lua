-- wrk: pipeline N GET requests per write (N from the first script argument, default 16)
init = function(args)
  local n = tonumber(args[1]) or 16
  local r = {}
  for i = 1, n do r[i] = wrk.format("GET", wrk.path) end
  req = table.concat(r)
end
request = function() return req end
