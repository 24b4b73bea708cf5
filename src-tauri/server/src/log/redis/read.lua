-- The events from ARGV[1] to ARGV[2] that a log keeping exactly ARGV[3]
-- events answers for, whatever the stream holds beyond them.
-- KEYS: meta hash, stream.
local head = tonumber(redis.call('HGET', KEYS[1], 'head') or '0')
local from = math.max(tonumber(ARGV[1]), head - tonumber(ARGV[3]) + 1)
local to = math.min(tonumber(ARGV[2]), head)
if from > to then
  return {}
end
return redis.call('XRANGE', KEYS[2], string.format('%d-0', from), string.format('%d-0', to))
