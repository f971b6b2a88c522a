-- Applies stock events to one shard group atomically (design §2, §5).
--
-- KEYS[1]              the change stream of the group and day   jg:chg:{g}:YYYYMMDD
-- KEYS[2]              the set of the group's stores              jg:stores:{g}
-- KEYS[3]              the last change id of the group             jg:chgid:{g}
-- KEYS[4]              the group's epoch mark                      jg:epoch:{g}
-- KEYS[5+3i .. 7+3i]   event i's stock hash, idempotency mark and its store's SKU set
--                      jg:stk:{g}:S:K, jg:idem:{g}:S:ID, jg:skus:{g}:S
-- ARGV[1], ARGV[2]     idempotency TTL and stream TTL, seconds
-- ARGV[3]              '1': write nothing unless the epoch mark exists (a deployment with a
--                      durable copy: a Redis that came back empty must be restored first)
-- ARGV[4+8i .. 11+8i]  event i: event_id, type, qty, expected_version ('' = none), store, sku,
--                      Kafka partition and offset it came from ('' = not from Kafka)
--
-- Returns one row per event: {status, code, on_hand, reserved, safety, version, updated_at}
-- with status 'applied', 'duplicate' or 'rejected' (code says why). Every check of an event
-- happens before any of its writes, and the script runs alone on its node, so each event is
-- all-or-nothing and no update is ever lost.
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[4]) == 0 then
  return redis.error_reply('REDISLOST this Redis has no epoch mark: it lost its data; run jaego restore')
end
local idem_ttl, stream_ttl = ARGV[1], ARGV[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Change ids rise across all day streams of the group (not only within one stream, as
-- XADD * would make them), so the feed can merge a group's days in apply order.
local last = redis.call('GET', KEYS[3])
local id_ms, id_seq = now, 0
if last then
  local lms, lseq = string.match(last, '^(%d+)-(%d+)$')
  lms, lseq = tonumber(lms), tonumber(lseq)
  if lms >= now then id_ms, id_seq = lms, lseq + 1 end
end
local out, wrote = {}, false
for i = 0, (#KEYS - 4) / 3 - 1 do
  local sk, ik, xk = KEYS[5 + 3 * i], KEYS[6 + 3 * i], KEYS[7 + 3 * i]
  local a = 4 + 8 * i
  local id, typ, q, ev = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3]
  local h = redis.call('HMGET', sk, 'on_hand', 'reserved', 'safety', 'version', 'updated_at')
  local oh, rs, sf = tonumber(h[1]) or 0, tonumber(h[2]) or 0, tonumber(h[3]) or 0
  local v, up = tonumber(h[4]) or 0, tonumber(h[5]) or 0
  local status, code, d = 'applied', '', 0
  if redis.call('EXISTS', ik) == 1 then
    status = 'duplicate'
  elseif typ == 'sale' or typ == 'disposal' then
    d = -q
  elseif typ == 'sale_cancel' or typ == 'receipt' or typ == 'return' or typ == 'adjust' then
    d = q
  elseif typ == 'set' then
    if ev ~= '' and tonumber(ev) ~= v then code = 'version_conflict' else d = q - oh end
  elseif typ == 'set_safety' then
    sf = q
  elseif typ == 'reserve' then
    if math.max(0, oh - rs - sf) < q then code = 'insufficient_stock' else rs = rs + q end
  elseif typ == 'release' or typ == 'fulfill' then
    if rs < q then
      code = 'insufficient_reserved'
    else
      rs = rs - q
      if typ == 'fulfill' then d = -q end
    end
  else
    code = 'invalid_input'
  end
  if code ~= '' then
    status = 'rejected'
  elseif status == 'applied' then
    if v == 0 then
      -- A new store × SKU: index it for snapshots (SSCAN, never KEYS).
      redis.call('SADD', xk, ARGV[a + 5])
      redis.call('SADD', KEYS[2], ARGV[a + 4])
    end
    oh, v, up = oh + d, v + 1, now
    redis.call('HSET', sk, 'on_hand', oh, 'reserved', rs, 'safety', sf, 'version', v, 'updated_at', now)
    redis.call('SET', ik, v, 'EX', idem_ttl)
    local xid = string.format('%d-%d', id_ms, id_seq)
    if ARGV[a + 6] == '' then
      redis.call('XADD', KEYS[1], xid, 'store', ARGV[a + 4], 'sku', ARGV[a + 5], 'type', typ,
        'delta', d, 'on_hand', oh, 'reserved', rs, 'safety', sf, 'version', v, 'event_id', id, 'at', now)
    else
      redis.call('XADD', KEYS[1], xid, 'store', ARGV[a + 4], 'sku', ARGV[a + 5], 'type', typ,
        'delta', d, 'on_hand', oh, 'reserved', rs, 'safety', sf, 'version', v, 'event_id', id, 'at', now,
        'kp', ARGV[a + 6], 'ko', ARGV[a + 7])
    end
    id_seq = id_seq + 1
    wrote = true
  end
  out[#out + 1] = {status, code, oh, rs, sf, v, up}
end
if wrote then
  redis.call('SET', KEYS[3], string.format('%d-%d', id_ms, id_seq - 1))
  redis.call('EXPIRE', KEYS[1], stream_ttl)
end
return out
