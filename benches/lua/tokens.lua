-- wrk script that sends a different bearer token with every request, cycling through the
-- file given after `--` (one token per line). The requests are formatted once in init(),
-- so request() costs wrk a table lookup, not a string build.
local requests = {}
local i = 0

function init(args)
  local file = assert(args[1], "usage: wrk ... -s tokens.lua URL -- TOKENS_FILE")
  local headers = {}
  for k, v in pairs(wrk.headers) do headers[k] = v end
  for line in io.lines(file) do
    if #line > 0 then
      headers["Authorization"] = "Bearer " .. line
      requests[#requests + 1] = wrk.format("GET", wrk.path, headers)
    end
  end
  assert(#requests > 0, "no tokens in " .. file)
end

function request()
  i = i % #requests + 1
  return requests[i]
end

-- done(): the RESULT line benches/load.sh parses, written in one place for both scripts.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")
