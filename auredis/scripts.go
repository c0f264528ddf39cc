package auredis

import "github.com/redis/go-redis/v9"

// Every read or write of the cluster's keys is one of these scripts, each on
// one key (as Redis Cluster allows: every key of a script in one slot), so
// that checking what a key holds and acting on it are one atomic step on the
// server. Each reads the server's run_id, which changes whenever a key's data
// may have been replaced behind the instances' backs: a restart (with or
// without persistence, or from an older file), a failover, a key moved to
// another node.

// runID is the Lua that sets node to the server's run_id.
const runID = `local node = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
`

// registryScript is every write to the registry, KEYS[1]. ARGV: 1 the mode
// ('join', 'beat', 'commit' or 'leave'), 2 the instance's id, 3 the rest of
// its entry ("epoch interval state"), 4 its setup, 5 '1' if it is a veteran
// (it has completed a push before), 6 how long (ms) a newcomer's setup stays
// unsettled, then (join) the segments it has, or (commit) the ids of the
// instances gone.
//
// The setup: the first to write sets it; a write with another is refused
// (and its instance removed from the registry), except that a veteran's
// replaces one set by a newcomer in the last ARGV[6] ms, as no instance can
// have pushed under it yet, and removes the newcomers registered under it.
// So an instance with a wrong secret that registers first after the registry
// was lost cannot lock out the instances that were using it.
//
// The node field is "run_id since": since is the first write under this
// run_id. The entry is "heartbeat epoch interval state run_id". It returns
// the server's TIME, the run_id, the node field, the setup field and (join)
// the whole registry.
var registryScript = redis.NewScript(runID + `local reg, id = KEYS[1], ARGV[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local mine, vet = ARGV[4], ARGV[5] == '1'
local cfg = redis.call('HGET', reg, 'config')
if not cfg then
  cfg = (vet and 'veteran ' or 'new ') .. now .. ' ' .. mine
  redis.call('HSET', reg, 'config', cfg)
else
  local by, at, setup = string.match(cfg, '^(%a+) (%d+) (.*)$')
  if setup == mine then
    if vet and by == 'new' then
      cfg = 'veteran ' .. now .. ' ' .. mine
      redis.call('HSET', reg, 'config', cfg)
    end
  elseif vet and by == 'new' and now - tonumber(at) < tonumber(ARGV[6]) then
    cfg = 'veteran ' .. now .. ' ' .. mine
    redis.call('HSET', reg, 'config', cfg)
    for _, f in ipairs(redis.call('HKEYS', reg)) do
      if f ~= id and string.match(f, '^%x+$') then
        redis.call('HDEL', reg, f)
      end
    end
  else
    redis.call('HDEL', reg, id)
    return redis.error_reply('REFUSED ' .. tostring(setup))
  end
end
local nf = redis.call('HGET', reg, 'node')
if not nf or string.match(nf, '^%x+') ~= node then
  nf = node .. ' ' .. now
  redis.call('HSET', reg, 'node', nf)
end
redis.call('HSET', reg, id, now .. ' ' .. ARGV[3] .. ' ' .. node)
if ARGV[1] == 'join' then
  for i = 7, #ARGV do
    redis.call('HSET', reg, 'segment:' .. ARGV[i], '1')
  end
  return {t[1], t[2], node, nf, cfg, redis.call('HGETALL', reg)}
end
if ARGV[1] == 'commit' then
  for i = 7, #ARGV do
    redis.call('HDEL', reg, ARGV[i])
  end
end
return {t[1], t[2], node, nf, cfg}
`)

// readRegistryScript reads the registry, KEYS[1], for Counts: the server's
// TIME, its run_id and the whole registry. A registry that has no node
// field under this run_id (lost, restored, failed over) gets one now, so
// that it settles from the first moment any client sees it; the write is a
// pcall, and a Redis out of memory refuses it without failing the read.
var readRegistryScript = redis.NewScript(runID + `local t = redis.call('TIME')
local nf = redis.call('HGET', KEYS[1], 'node')
if not nf or string.match(nf, '^%x+') ~= node then
  redis.pcall('HSET', KEYS[1], 'node', node .. ' ' .. (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)))
end
return {t[1], t[2], node, redis.call('HGETALL', KEYS[1])}
`)

// probeScript reads what a push needs to plan for key KEYS[1]: the server's
// run_id, the key's token — made now, with ARGV[2], if it has none — and the
// score of the instance's mark, ARGV[1] ("" if it has none). The token is a
// member scored -inf that a key gets when it is made: a key deleted or
// evicted and made again has another, so a push can tell that what it sent
// before is gone.
var probeScript = redis.NewScript(runID + `local tok = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '-inf', 'LIMIT', 0, 1)[1]
if not tok then
  tok = ARGV[2]
  redis.call('ZADD', KEYS[1], '-inf', tok)
end
local mark = redis.call('ZSCORE', KEYS[1], ARGV[1])
return {node, tok, mark or ''}
`)

// checkIncarnation is the Lua that refuses to go on unless the server is
// still ARGV[1] and the key KEYS[1] still has the token ARGV[2]: the key
// holds all a push has sent it so far.
const checkIncarnation = `if node ~= ARGV[1] then
  return redis.error_reply('LOST the server restarted or failed over (run_id ' .. node .. ')')
end
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  return redis.error_reply('LOST the key was deleted or evicted')
end
`

// sendScript adds the accounts, ARGV[3..] as score, member pairs, to key
// KEYS[1] with ZADD GT, if it is still the key the push planned for.
var sendScript = redis.NewScript(runID + checkIncarnation + `local n = 0
for i = 3, #ARGV, 1000 do
  n = n + redis.call('ZADD', KEYS[1], 'GT', unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return n
`)

// markScript ends a push on key KEYS[1], if it is still the key the push
// planned for and sent to: the instance's mark ARGV[3] moves to score
// ARGV[4] (LT: only ever to a newer push), the accounts scored below ARGV[5]
// are trimmed, and the marks ARGV[6..] of instances gone are removed.
var markScript = redis.NewScript(runID + checkIncarnation + `redis.call('ZADD', KEYS[1], 'LT', ARGV[4], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '0', ARGV[5])
for i = 6, #ARGV do
  redis.call('ZREM', KEYS[1], ARGV[i])
end
return 1
`)

// countScript counts, in one step, key KEYS[1]'s accounts scored at or
// above each of ARGV, and returns them followed by the key's marks with
// their scores.
var countScript = redis.NewScript(`local out = {}
for i = 1, #ARGV do
  out[i] = redis.call('ZCOUNT', KEYS[1], ARGV[i], '+inf')
end
out[#ARGV + 1] = redis.call('ZRANGEBYSCORE', KEYS[1], '(-inf', '(0', 'WITHSCORES')
return out
`)
