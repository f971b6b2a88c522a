-- The stores within a radius of a point, nearest first, with their records (design §15).
-- KEYS: the geo index, the records hash, group 0's epoch mark.
-- ARGV: require_epoch ('1' with a durable copy), lon, lat, radius in km, count.
-- Answers {distance, record, distance, record, …}.
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[3]) == 0 then
  return redis.error_reply('REDISLOST this Redis has no epoch mark: it lost its data; run jaego restore')
end
local found = redis.call('GEOSEARCH', KEYS[1], 'FROMLONLAT', ARGV[2], ARGV[3], 'BYRADIUS', ARGV[4], 'km', 'ASC', 'COUNT', ARGV[5], 'WITHDIST')
local out = {}
for _, f in ipairs(found) do
  out[#out + 1] = f[2]
  out[#out + 1] = redis.call('HGET', KEYS[2], f[1]) or ''
end
return out
