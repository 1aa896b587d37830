-- Compare-and-set of one subject's whole state, atomically, in one round trip.
-- KEYS[1]  the subject's hash (fields: v = version, d = state document)
-- ARGV[1]  the version the caller's decision was based on ("0" for a subject with nothing stored)
-- ARGV[2]  the subject's new state document
-- ARGV[3]  milliseconds until nothing of the subject matters any more: the key expires then
local current = redis.call('HGET', KEYS[1], 'v')
if (current or '0') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'v', tostring(tonumber(ARGV[1]) + 1), 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
