-- Delete one subject if nothing of it matters any more, atomically, and return what it held.
-- KEYS[1]  the subject's hash (fields: v = version, d = state document, k = keep_until,
--          i = incarnation)
-- ARGV[1]  now, in microseconds since the Unix epoch
-- Returns {v, d, k, i} of the deleted hash, or false when the subject is not due (or not there, or
-- written before keep_until was stored: such a key is left to expire by itself).
local held = redis.call('HMGET', KEYS[1], 'v', 'd', 'k', 'i')
if not held[3] or tonumber(held[3]) > tonumber(ARGV[1]) then
  return false
end
redis.call('DEL', KEYS[1])
return held
