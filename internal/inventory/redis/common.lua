-- The parts every jaego script shares (the Go side puts this file before each script):
-- the stock record's format, the change feed's type numbers, entries and ids.

-- A change's type is written as its number (codec.go's typeCodes: one byte in the stream).
local codes = {sale = 1, sale_cancel = 2, receipt = 3, ['return'] = 4, disposal = 5, adjust = 6,
  set = 7, set_safety = 8, reserve = 9, release = 10, fulfill = 11}

local function server_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A stock record is the field <sku> of its store's hash, packed as
-- "on_hand:reserved:safety:version:updated_at" (unix ms). read_record returns the raw
-- value (false when there is none) and the numbers, or raises on a malformed value.
local function read_record(hash, sku)
  local raw = redis.call('HGET', hash, sku)
  if not raw then return false, 0, 0, 0, 0, 0 end
  local f1, f2, f3, f4, f5 = string.match(raw, '^(-?%d+):(%d+):(%d+):(%d+):(%d+)$')
  if not f5 then
    error('JAEGOCORRUPT stock record ' .. hash .. '/' .. sku .. ' is malformed: ' .. raw)
  end
  return raw, tonumber(f1), tonumber(f2), tonumber(f3), tonumber(f4), tonumber(f5)
end

local function write_record(hash, sku, oh, rs, sf, v, up)
  redis.call('HSET', hash, sku, string.format('%d:%d:%d:%d:%d', oh, rs, sf, v, up))
end

-- Change ids rise across all day streams of a group (not only within one stream, as
-- XADD * would make them), so the feed can merge a group's days in apply order. ids holds
-- the group's last id key and the next id; changes_done stores the last one handed out.
local function changes_begin(last_key, now)
  local ids = {key = last_key, ms = now, seq = 0, wrote = false}
  local last = redis.call('GET', last_key)
  if last then
    local lms, lseq = string.match(last, '^(%d+)-(%d+)$')
    lms, lseq = tonumber(lms), tonumber(lseq)
    if lms >= now then ids.ms, ids.seq = lms, lseq + 1 end
  end
  return ids
end

-- add_change appends one change entry (codec.go's fields, in its order). note is what the
-- durable copy needs beyond the record (inventory.Note's text; '' for most changes).
local function add_change(ids, stream, store, sku, typ, d, oh, rs, sf, v, event_id, kp, ko, note)
  redis.call('XADD', stream, string.format('%d-%d', ids.ms, ids.seq), 'store', store, 'sku', sku,
    'type', codes[typ], 'delta', d, 'on_hand', oh, 'reserved', rs, 'safety', sf, 'version', v,
    'event_id', event_id, 'kp', kp, 'ko', ko, 'note', note)
  ids.seq = ids.seq + 1
  ids.wrote = true
end

local function changes_done(ids, stream, stream_ttl)
  if ids.wrote then
    redis.call('SET', ids.key, string.format('%d-%d', ids.ms, ids.seq - 1))
    redis.call('EXPIRE', stream, stream_ttl)
  end
end

local function require_epoch(flag, epoch_key)
  if flag == '1' and redis.call('EXISTS', epoch_key) == 0 then
    return false
  end
  return true
end
