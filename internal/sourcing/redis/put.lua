-- Puts a store in the directory: its position in the geo index and its record, together.
-- KEYS: the geo index, the records hash, group 0's epoch mark, the records' version.
-- ARGV: require_epoch, store, lon, lat, record, a new version (a random token).
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[3]) == 0 then
  return redis.error_reply('REDISLOST this Redis has no epoch mark: it lost its data; run jaego restore')
end
redis.call('GEOADD', KEYS[1], ARGV[3], ARGV[4], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[5])
redis.call('SET', KEYS[4], ARGV[6])
return 1
