-- Compare-and-set of one subject's whole state, atomically, in one round trip.
-- KEYS[1]  the subject's hash (fields: v = version, i = incarnation, d = state document,
--          k = keep_until)
-- ARGV[1]  the version the caller's decision was based on ("0" for a subject with nothing stored)
-- ARGV[2]  the incarnation: for version "0" the new subject's own, otherwise the one the caller
--          read (a hash written before incarnations were stored has none, which reads as "")
-- ARGV[3]  the subject's new state document
-- ARGV[4]  keep_until, in microseconds since the Unix epoch: purge deletes the subject after it
-- ARGV[5]  milliseconds until the key expires by itself: keep_until - written_at + the grace period
local stored = redis.call('HMGET', KEYS[1], 'v', 'i')
if ARGV[1] == '0' then
  if stored[1] then
    return 0
  end
elseif stored[1] ~= ARGV[1] or (stored[2] or '') ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'v', tostring(tonumber(ARGV[1]) + 1), 'i', ARGV[2], 'd', ARGV[3],
  'k', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
