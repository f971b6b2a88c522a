-- One step of a store order's reservation (design §12), atomic at the reservation's store
-- (common.lua, put before this file, has the record format and the change entries).
--
-- KEYS[1] the group's change stream of the day   jg:chg:{g}:YYYYMMDD
-- KEYS[2] the group's last change id             jg:chgid:{g}
-- KEYS[3] the group's epoch mark                 jg:epoch:{g}
-- KEYS[4] the store's stock hash                 jg:stk:{g}:<store>
-- KEYS[5] the reservation                        jg:rsv:{g}:<id>  (hash)
-- KEYS[6] the group's expiry queue               jg:rsvexp:{g}    (sorted set: <store>:<id> by expiry, ms)
-- KEYS[7] the group's held counts                jg:rsvheld:{g}   (hash: store → reservations held)
-- KEYS[8] the store's reservations               jg:rsvs:{g}:<store> (sorted set: id by creation, ms)
-- ARGV[1] op: hold, confirm, cancel or expire
-- ARGV[2] now, unix ms (the caller's clock: the one expires_at is set and checked by)
-- ARGV[3] stream TTL, seconds; ARGV[4] '1': require the epoch mark; ARGV[5] how long an
--         ended reservation is kept, ms
-- ARGV[6] the reservation id; ARGV[7] the most reservations a store may hold
-- hold also: ARGV[8] store, ARGV[9] expires_at (ms), then sku, qty… (sorted by sku)
--
-- A reservation is a hash: store, items ("sku:qty,…"), status, expires, created, updated.
-- Each change notes its step for the durable copy (inventory.Note): "h:<qty>:<expires>:<id>"
-- for a hold's, "e:<status>:<id>" for an end's.
-- Returns {outcome, store, items, status, expires, created, updated} with outcome one of
-- held (a new hold), again (the id was held before: as it is), done (confirmed, cancelled
-- or expired now), as_is (cancel of a cancelled one), not_held, missing, not_due; or
-- {'short', sku, qty, available, …} when a hold cannot be had whole; or {'too_many'} when
-- the store holds ARGV[7] reservations already.
if not require_epoch(ARGV[4], KEYS[3]) then
  return redis.error_reply('REDISLOST this Redis has no epoch mark: it lost its data; run jaego restore')
end
local op, now, stream_ttl, keep, id, max_holds = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[5], ARGV[6], tonumber(ARGV[7])
local rsv, queue, stock, counts = KEYS[5], KEYS[6], KEYS[4], KEYS[7]

local function answer(outcome)
  local h = redis.call('HMGET', rsv, 'store', 'items', 'status', 'expires', 'created', 'updated')
  return {outcome, h[1], h[2], h[3], h[4], h[5], h[6]}
end

local function items_of(packed)
  local out = {}
  for sku, q in string.gmatch(packed, '([^:,]+):(%d+)') do
    out[#out + 1] = {sku, tonumber(q)}
  end
  return out
end

-- finish moves a held reservation to its end: each item's record changes by typ (release
-- or fulfill) with a change in the feed, the status is written and the reservation leaves
-- the expiry queue, kept for keep ms more.
local function finish(status, typ, suffix)
  local store = redis.call('HGET', rsv, 'store')
  local items = items_of(redis.call('HGET', rsv, 'items'))
  local ids = changes_begin(KEYS[2], server_ms())
  local t = server_ms()
  for _, it in ipairs(items) do
    local raw, oh, rs, sf, v = read_record(stock, it[1])
    local d = 0
    rs = math.max(0, rs - it[2]) -- a release event (POST /v1/events) may have freed some of it already
    if typ == 'fulfill' then d = -it[2] end
    oh, v = oh + d, v + 1
    write_record(stock, it[1], oh, rs, sf, v, t)
    add_change(ids, KEYS[1], store, it[1], typ, d, oh, rs, sf, v, 'rsv-' .. id .. '-' .. suffix, '', '', 'e:' .. status .. ':' .. id)
  end
  changes_done(ids, KEYS[1], stream_ttl)
  redis.call('HSET', rsv, 'status', status, 'updated', now)
  redis.call('ZREM', queue, store .. ':' .. id)
  if redis.call('HINCRBY', counts, store, -1) <= 0 then redis.call('HDEL', counts, store) end
  redis.call('PEXPIRE', rsv, keep)
  return answer('done')
end

local exists = redis.call('EXISTS', rsv) == 1
if op == 'hold' then
  if exists then return answer('again') end
  local store, expires = ARGV[8], ARGV[9]
  if tonumber(redis.call('HGET', counts, store) or '0') >= max_holds then return {'too_many'} end
  local items, short, packed = {}, {}, {}
  for a = 10, #ARGV, 2 do
    local sku, q = ARGV[a], tonumber(ARGV[a + 1])
    local raw, oh, rs, sf, v = read_record(stock, sku)
    local available = math.max(0, oh - rs - sf)
    if available < q then
      short[#short + 1] = sku
      short[#short + 1] = q
      short[#short + 1] = available
    end
    items[#items + 1] = {sku, q}
    packed[#packed + 1] = sku .. ':' .. q
  end
  if #short > 0 then
    table.insert(short, 1, 'short')
    return short
  end
  local ids = changes_begin(KEYS[2], server_ms())
  local t = server_ms()
  for _, it in ipairs(items) do
    local raw, oh, rs, sf, v = read_record(stock, it[1])
    rs, v = rs + it[2], v + 1
    write_record(stock, it[1], oh, rs, sf, v, t)
    add_change(ids, KEYS[1], store, it[1], 'reserve', 0, oh, rs, sf, v, 'rsv-' .. id .. '-hold', '', '',
      'h:' .. it[2] .. ':' .. expires .. ':' .. id)
  end
  changes_done(ids, KEYS[1], stream_ttl)
  redis.call('HSET', rsv, 'store', store, 'items', table.concat(packed, ','), 'status', 'held',
    'expires', expires, 'created', now, 'updated', now)
  redis.call('ZADD', queue, expires, store .. ':' .. id)
  redis.call('HINCRBY', counts, store, 1)
  -- The store's list: ids by creation; those older than any reservation still kept leave it.
  redis.call('ZADD', KEYS[8], now, id)
  redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', now - tonumber(keep) - 86400000)
  redis.call('PEXPIRE', KEYS[8], tonumber(keep) + 86400000)
  return answer('held')
end
if not exists then return {'missing'} end
local status, expires = redis.call('HGET', rsv, 'status'), tonumber(redis.call('HGET', rsv, 'expires'))
local due = status == 'held' and now >= expires
if op == 'expire' then
  if due then return finish('expired', 'release', 'expire') end
  if status ~= 'held' then redis.call('ZREM', queue, redis.call('HGET', rsv, 'store') .. ':' .. id) end
  return answer('not_due')
end
if due then
  -- Past its time but not swept yet: it expires now, and the confirm or cancel finds it so.
  finish('expired', 'release', 'expire')
  return answer('not_held')
end
if op == 'confirm' then
  if status ~= 'held' then return answer('not_held') end
  return finish('confirmed', 'fulfill', 'confirm')
end
if op == 'cancel' then
  if status == 'cancelled' then return answer('as_is') end
  if status ~= 'held' then return answer('not_held') end
  return finish('cancelled', 'release', 'cancel')
end
return redis.error_reply('unknown reservation op ' .. op)
