-- The record of a sourcing hold under one reservation id (design §15): one call at a time
-- holds under an id, and an id whose hold was answered answers the same again.
-- KEYS: the record.
-- ARGV[1] = 'begin', then: now ms, until ms, token, block, keep ms. Answers {'held', next, plan}
--   when a hold under the id was answered; {'busy', until, ''} while another call holds
--   (or one that died may still hold: until is when its parts have expired); otherwise
--   {'begun', first, ''}: this call holds, its parts numbered from first + 1, and the next
--   call that takes over numbers after first + block.
-- ARGV[1] = 'finish', then: token, state ('held' or 'released'), plan, keep ms. Answers 0 when
--   the token is no longer the record's (another call took over).
local r = KEYS[1]
if ARGV[1] == 'begin' then
  local s = redis.call('HMGET', r, 'state', 'until', 'next', 'plan')
  local nxt = tonumber(s[3]) or 0
  if s[1] == 'held' then
    return {'held', tostring(nxt), s[4]}
  end
  if s[1] == 'holding' and tonumber(s[2]) > tonumber(ARGV[2]) then
    return {'busy', s[2], ''}
  end
  redis.call('HSET', r, 'state', 'holding', 'until', ARGV[3], 'token', ARGV[4], 'next', nxt + tonumber(ARGV[5]))
  redis.call('PEXPIRE', r, ARGV[6])
  return {'begun', tostring(nxt), ''}
end
if redis.call('HGET', r, 'token') ~= ARGV[2] then
  return 0
end
redis.call('HSET', r, 'state', ARGV[3], 'plan', ARGV[4])
redis.call('PEXPIRE', r, ARGV[5])
return 1
