#!/usr/bin/env bash
# What each step of the apply script (internal/inventory/redis/apply.lua) costs Redis, in µs
# an event: every step run 100,000 times inside one EVAL on a private redis-server (a unix
# socket in a temporary directory), its time read from INFO commandstats, less an empty
# loop's. The data is shaped as the store's: a stock hash of records, mark buckets of 100
# twelve-byte digests (listpack-encoded, as hash-max-listpack-entries keeps them), a change
# stream whose entries have the codec's 12 fields. docs/benchmarks.md reads its output.
set -euo pipefail
dir=$(mktemp -d)
trap 'redis-cli -s "$dir/r.sock" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
redis-server --port 0 --unixsocket "$dir/r.sock" --save '' --appendonly no --daemonize yes --pidfile "$dir/r.pid" --dir "$dir" >/dev/null
for _ in $(seq 100); do redis-cli -s "$dir/r.sock" ping >/dev/null 2>&1 && break; sleep 0.05; done
r() { redis-cli -s "$dir/r.sock" "$@"; }

# usec runs the Lua body n times in one EVAL (after setup) and prints its µs.
usec() {
  r flushall >/dev/null
  r eval "for b=1,4 do for i=1,100 do redis.call('HSET','idem'..b, string.format('%012d', i*7+b), '') end
      for i=1,12 do redis.call('HSET','few'..b, string.format('%012d', i*7+b), '') end end
    for i=1,1000 do redis.call('HSET','stk', string.format('880%06d', i), '12:0:0:5:1733000000000') end return 1" 0 >/dev/null
  r config resetstat >/dev/null
  # The names and digests are made before the loop (the script has them in KEYS and ARGV):
  # the empty loop pays for that too.
  r eval "local x, out, few, idem, mk, skus, digs = 0, {}, {}, {}, {}, {}, {}
    for j=1,4 do few[j], idem[j] = 'few'..j, 'idem'..j end
    for i=1,1000 do skus[i], mk[i] = string.format('880%06d', i), 'mark'..i end
    for i=1,100000 do digs[i] = string.format('z%011d', i) end
    for i=1,100000 do $1 end if #out > 0 then return out end return x" 0 >/dev/null
  r info commandstats | sed -n 's/^cmdstat_eval:calls=1,usec=\([0-9]*\),.*/\1/p'
}
empty=$(usec "x = x + 1")
step() { printf '| %s | %.2f |\n' "$1" "$(awk -v t="$(usec "$2")" -v e="$empty" 'BEGIN { print (t - e) / 100000 }')"; }

echo "| apply step, one event | µs of Redis |"
echo "|---|---:|"
step "read the record (HGET, string.match of its five numbers)" \
  "local raw = redis.call('HGET','stk', skus[i % 1000 + 1]) local a,b,c,d,e = string.match(raw, '^(-?%d+):(%d+):(%d+):(%d+):(%d+)\$') x = x + tonumber(a)"
step "look for the mark in 4 windows, buckets of 12 marks (as in jaegobench store)" \
  "for j=1,4 do x = x + redis.call('HEXISTS', few[j], digs[i]) end"
step "the same, buckets of 100 marks (--idempotency-buckets sized as advised)" \
  "for j=1,4 do x = x + redis.call('HEXISTS', idem[j], digs[i]) end"
step "write the mark (HSET of a new digest)" \
  "redis.call('HSET', mk[i % 1000 + 1], digs[i], '')"
step "write the record (string.format, HSET)" \
  "redis.call('HSET','stk', skus[i % 1000 + 1], string.format('%d:%d:%d:%d:%d', 13, 0, 0, 6, 1733000000000))"
step "append the change (XADD of 12 fields)" \
  "redis.call('XADD','chg', string.format('%d-%d', 1, i), 'store','S0001','sku','880000001','type',3,'delta',1,'on_hand',13,'reserved',0,'safety',0,'version',6,'event_id','b-1234567','kp','','ko','','note','')"
step "the answer row (a table of 7, converted to RESP)" \
  "out[#out+1] = {'applied','',13,0,0,6,1733000000000}"
