-- Compare-and-set of one subject's whole state, atomically, in one round trip.
-- KEYS[1]  the subject's hash (fields: v = version, d = state document, k = keep_until)
-- ARGV[1]  the version the caller's decision was based on ("0" for a subject with nothing stored)
-- ARGV[2]  the subject's new state document
-- ARGV[3]  keep_until, in microseconds since the Unix epoch: purge deletes the subject after it
-- ARGV[4]  milliseconds until the key expires by itself: keep_until - written_at + the grace period
local current = redis.call('HGET', KEYS[1], 'v')
if (current or '0') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'v', tostring(tonumber(ARGV[1]) + 1), 'd', ARGV[2], 'k', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
