-- Applies stock events to one shard group atomically (design §2, §5).
--
-- KEYS[1]              the change stream of the group and day   jg:chg:{g}:YYYYMMDD
-- KEYS[2]              the set of the group's stores              jg:stores:{g}
-- KEYS[3]              the last change id of the group             jg:chgid:{g}
-- KEYS[4]              the group's epoch mark                      jg:epoch:{g}
-- then for event i:    its store's stock hash                      jg:stk:{g}:S
--                      and M mark buckets, the one to write first   jg:idem:{g}:W:B
--                      (for a load row: M times the load's mark      jg:load:{g}:<load id>)
-- ARGV[1]              when the written mark buckets expire, unix ms
-- ARGV[2]              stream TTL, seconds
-- ARGV[3]              '1': write nothing unless the epoch mark exists (a deployment with a
--                      durable copy: a Redis that came back empty must be restored first)
-- ARGV[4]              M, the mark buckets per event
-- ARGV[5+9i .. 13+9i]  event i: event_id, type, qty, expected_version ('' = none), store,
--                      sku, Kafka partition and offset it came from ('' = not from Kafka),
--                      and the digest of its mark (for a load row: its line number)
--
-- A stock record is the field <sku> of its store's hash, packed as
-- "on_hand:reserved:safety:version:updated_at" (unix ms).
--
-- type 'load' is a row of a stock snapshot (jaego load): qty is on_hand and
-- expected_version the safety stock ('' = keep). It is written as a 'set' change, and is
-- 'unchanged' (nothing written but the mark) when the record already holds those numbers.
-- A load's mark is one number per group: the last line applied. Its rows reach a group in
-- line order, one call at a time, so a line at or below the mark is a 'duplicate'.
--
-- Returns one row per event: {status, code, on_hand, reserved, safety, version, updated_at}
-- with status 'applied', 'duplicate', 'unchanged' or 'rejected' (code says why). Every
-- check of an event happens before any of its writes, and the script runs alone on its
-- node, so each event is all-or-nothing and no update is ever lost.
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[4]) == 0 then
  return redis.error_reply('REDISLOST this Redis has no epoch mark: it lost its data; run jaego restore')
end
local mark_expiry, stream_ttl, m = ARGV[1], ARGV[2], tonumber(ARGV[4])
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
-- A change's type is written as its number (codec.go's typeCodes: one byte in the stream).
local codes = {sale = 1, sale_cancel = 2, receipt = 3, ['return'] = 4, disposal = 5, adjust = 6,
  set = 7, set_safety = 8, reserve = 9, release = 10, fulfill = 11}
local out, wrote, marked, loads, indexed = {}, false, {}, {}, {}
for i = 0, (#KEYS - 4) / (1 + m) - 1 do
  local k = 5 + (1 + m) * i
  local a = 5 + 9 * i
  local id, typ, q, ev = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3]
  local store, sku, digest = ARGV[a + 4], ARGV[a + 5], ARGV[a + 8]
  local raw = redis.call('HGET', KEYS[k], sku)
  local oh, rs, sf, v, up = 0, 0, 0, 0, 0
  if raw then
    local f1, f2, f3, f4, f5 = string.match(raw, '^(-?%d+):(%d+):(%d+):(%d+):(%d+)$')
    if not f5 then
      return redis.error_reply('JAEGOCORRUPT stock record ' .. store .. '/' .. sku .. ' is malformed: ' .. raw)
    end
    oh, rs, sf, v, up = tonumber(f1), tonumber(f2), tonumber(f3), tonumber(f4), tonumber(f5)
  end
  local status, code, d, change = 'applied', '', 0, typ
  if typ == 'load' then
    local lk = KEYS[k + 1]
    if loads[lk] == nil then loads[lk] = tonumber(redis.call('GET', lk) or '0') end
    if tonumber(digest) <= loads[lk] then status = 'duplicate' end
  else
    for j = 1, m do
      if redis.call('HEXISTS', KEYS[k + j], digest) == 1 then
        status = 'duplicate'
        break
      end
    end
  end
  if status == 'duplicate' then
  elseif typ == 'sale' or typ == 'disposal' then
    d = -q
  elseif typ == 'sale_cancel' or typ == 'receipt' or typ == 'return' or typ == 'adjust' then
    d = q
  elseif typ == 'set' then
    if ev ~= '' and tonumber(ev) ~= v then code = 'version_conflict' else d = q - oh end
  elseif typ == 'load' then
    local nsf = sf
    if ev ~= '' then nsf = tonumber(ev) end
    if raw and oh == q and sf == nsf then status = 'unchanged' end
    d, sf, change = q - oh, nsf, 'set'
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
  elseif status ~= 'duplicate' then
    if typ == 'load' then
      loads[KEYS[k + 1]] = tonumber(digest)
    else
      redis.call('HSET', KEYS[k + 1], digest, '')
    end
    marked[KEYS[k + 1]] = true
  end
  if status == 'applied' then
    if not raw and not indexed[store] then
      redis.call('SADD', KEYS[2], store) -- a store's first SKU: index it for snapshots
      indexed[store] = true
    end
    oh, v, up = oh + d, v + 1, now
    redis.call('HSET', KEYS[k], sku, string.format('%d:%d:%d:%d:%d', oh, rs, sf, v, now))
    redis.call('XADD', KEYS[1], string.format('%d-%d', id_ms, id_seq), 'store', store, 'sku', sku,
      'type', codes[change], 'delta', d, 'on_hand', oh, 'reserved', rs, 'safety', sf, 'version', v,
      'event_id', id, 'kp', ARGV[a + 6], 'ko', ARGV[a + 7])
    id_seq = id_seq + 1
    wrote = true
  end
  out[#out + 1] = {status, code, oh, rs, sf, v, up}
end
for key in pairs(marked) do
  if loads[key] then redis.call('SET', key, string.format('%d', loads[key])) end
  redis.call('PEXPIREAT', key, mark_expiry)
end
if wrote then
  redis.call('SET', KEYS[3], string.format('%d-%d', id_ms, id_seq - 1))
  redis.call('EXPIRE', KEYS[1], stream_ttl)
end
return out
