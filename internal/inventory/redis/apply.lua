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
-- common.lua (put before this file) has the record's format and the change entries.
--
-- type 'load' is a row of a stock snapshot (jaego load): qty is on_hand and
-- expected_version the safety stock ('' = keep). It is written as a 'set' change, and is
-- 'unchanged' (nothing written but the mark) when the record already holds those numbers.
-- A load's mark is one number per group: the last line applied. Its rows reach a group in
-- line order, one call at a time, so a line at or below the mark is a 'duplicate'. A load
-- row's change notes its line and load ("l:<line>:<load id>", its event id being
-- "<load id>-<line>"): the durable copy keeps the marks from them.
--
-- Returns one row per event, flat (7 values an event, one array for the call: a table per
-- event cost Redis 0.3 µs an event more to answer): status, code, on_hand, reserved,
-- safety, version, updated_at, with status 'applied', 'duplicate', 'unchanged' or
-- 'rejected' (code says why). Every
-- check of an event happens before any of its writes, and the script runs alone on its
-- node, so each event is all-or-nothing and no update is ever lost.
if not require_epoch(ARGV[3], KEYS[4]) then
  return redis.error_reply('REDISLOST this Redis has no epoch mark: it lost its data; run jaego restore')
end
local mark_expiry, stream_ttl, m = ARGV[1], ARGV[2], tonumber(ARGV[4])
local now = server_ms()
local ids = changes_begin(KEYS[3], now)
local out, marked, loads, indexed = {}, {}, {}, {}
local n = 0
for i = 0, (#KEYS - 4) / (1 + m) - 1 do
  local k = 5 + (1 + m) * i
  local a = 5 + 9 * i
  local id, typ, q, ev = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3]
  local store, sku, digest = ARGV[a + 4], ARGV[a + 5], ARGV[a + 8]
  local raw, oh, rs, sf, v, up = read_record(KEYS[k], sku)
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
  if code == '' and status ~= 'duplicate' and math.abs(oh + d) > 1000000000 then
    code = 'stock_out_of_range' -- inventory.MaxQty: the bound jaego load takes too
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
    write_record(KEYS[k], sku, oh, rs, sf, v, up)
    local note = ''
    if typ == 'load' then note = 'l:' .. digest .. ':' .. string.sub(id, 1, #id - #digest - 1) end
    add_change(ids, KEYS[1], store, sku, change, d, oh, rs, sf, v, id, ARGV[a + 6], ARGV[a + 7], note)
  end
  out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5], out[n + 6], out[n + 7] = status, code, oh, rs, sf, v, up
  n = n + 7
end
for key in pairs(marked) do
  if loads[key] then redis.call('SET', key, string.format('%d', loads[key])) end
  redis.call('PEXPIREAT', key, mark_expiry)
end
changes_done(ids, KEYS[1], stream_ttl)
return out
