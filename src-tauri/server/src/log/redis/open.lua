-- The feed's epoch and head, creating the feed (with the given epoch) if
-- it is new. KEYS: meta hash. ARGV: epoch if the feed is new.
redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1])
local state = redis.call('HMGET', KEYS[1], 'epoch', 'head')
return {state[1], tonumber(state[2] or '0')}
