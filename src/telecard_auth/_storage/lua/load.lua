-- Read one subject's hash so that WAIT can confirm what was read: used when the storage waits
-- for replicas. A read alone moves no replication offset, so WAIT after it would confirm nothing;
-- writing v onto itself replicates, changes nothing, and comes after every earlier write to the
-- key in the replication stream, so once a replica holds it, it holds the state read too.
-- KEYS[1]  the subject's hash (fields: v = version, d = state document, k = keep_until,
--          i = incarnation)
-- Returns {v, d, k, i}, as HMGET does (false for each missing field).
local held = redis.call('HMGET', KEYS[1], 'v', 'd', 'k', 'i')
if held[1] then
  redis.call('HSET', KEYS[1], 'v', held[1])
end
return held
