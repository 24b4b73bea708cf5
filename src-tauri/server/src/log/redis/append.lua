-- Stores one event as its feed's next seq, or answers a publish id seen
-- before with its stored outcome. Atomic: the numbering, the stream entry
-- (its id is the seq) and the publish id are written together.
--
-- KEYS: meta hash, stream, [publish id hash]
-- ARGV: epoch if the feed is new, data, ts, events kept underneath,
--       publish id lifetime (ms), deadline (Unix ms), feed name
local clock = redis.call('TIME')
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
-- A publish whose sender already answered `internal` must never be
-- stored: it arrives here only before its deadline.
if now_ms > tonumber(ARGV[6]) then
  return redis.error_reply('HOLDLINE_LATE the publish reached Redis after its deadline')
end
if #KEYS == 3 then
  local prior = redis.call('HMGET', KEYS[3], 'feed', 'seq')
  if prior[1] then
    return {prior[1], tonumber(prior[2])}
  end
end
redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1])
local seq = redis.call('HINCRBY', KEYS[1], 'head', 1)
local keep_from = math.max(seq - tonumber(ARGV[4]) + 1, 1)
redis.call('XADD', KEYS[2], 'MINID', '~', string.format('%d', keep_from),
  string.format('%d-0', seq), 'd', ARGV[2], 't', ARGV[3])
if #KEYS == 3 then
  redis.call('HSET', KEYS[3], 'feed', ARGV[7], 'seq', seq)
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
end
return {ARGV[7], seq}
