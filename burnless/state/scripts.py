"""The Lua scripts the Redis backend runs: each one is atomic on the server, so no other process
reads or writes between its first and last command (never read-then-write from the client).

Money is counted in integer nano-USD (1e-9 USD), so sums are exact. Server time (``TIME``) is
the only clock: machines whose clocks disagree still agree on deadlines and cooldowns.

An open reservation is a member ``<id>|<nano-USD>`` of sorted sets scored by its deadline (ms):
``open`` (every reservation: the day scope), ``open:s:<session>``, ``open:t:<tree>`` and, for a
gateway request with a virtual key, ``open:k:<key>``. Each
script that reads a set first drops the members past their deadline, and every set expires
with its last member's deadline, so a reservation whose process died (and stopped renewing
it) is gone after its TTL, key included.
"""

from __future__ import annotations

_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: 1 open, 2 open:s:<session>, 3 open:t:<tree>, 4 spent:d:<day>, 5 spent:s:<session>,
#       6 calls:s:<session>, 7 spent:t:<tree>; for a virtual key's request also
#       8 open:k:<key>, 9 spent:k:d:<day>:<key>, 10 spent:k:m:<month>:<key>
# ARGV: 1 ttl ms, 2 id, 3 fixed amount, 4 grow (1: an agent loop's ceiling is what the budget
#       has left, at least the fixed amount), 5 max calls per session (-1: none), 6 tree (1/0),
#       7 number of scopes, then per scope: kind (day|session|tree|run, and keyday|keymonth
#       with keys 8-10), limit (-1: none),
#       spent (for kind run: what the caller knows its run spent)
# Returns {1, member, amount} or {0, scope (1-based; 0: max calls), spent, held, amount,
#          settled calls, open calls}.
RESERVE = _NOW_MS + """
local ttl = tonumber(ARGV[1])
local fixed = tonumber(ARGV[3])
local max_calls = tonumber(ARGV[5])
local has_tree = ARGV[6] == '1'
local n = tonumber(ARGV[7])
local function held(key)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local sum, count = 0, 0
  for _, m in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    local bar = string.find(m, '|', 1, true)
    sum = sum + (tonumber(string.sub(m, (bar or 0) + 1)) or 0)
    count = count + 1
  end
  return sum, count
end
local function num(key)
  return tonumber(redis.call('GET', key) or '0') or 0
end
local held_all = held(KEYS[1])
local held_s, open_s = held(KEYS[2])
local held_t = 0
if has_tree then held_t = held(KEYS[3]) end
local has_key = #KEYS >= 10
local held_k = 0
if has_key then held_k = held(KEYS[8]) end
local spent, holds, limits = {}, {}, {}
for i = 1, n do
  local base = 8 + 3 * (i - 1)
  local kind = ARGV[base]
  limits[i] = tonumber(ARGV[base + 1])
  if kind == 'day' then spent[i], holds[i] = num(KEYS[4]), held_all
  elseif kind == 'session' then spent[i], holds[i] = num(KEYS[5]), held_s
  elseif kind == 'tree' then spent[i], holds[i] = num(KEYS[7]), held_t
  elseif kind == 'keyday' and has_key then spent[i], holds[i] = num(KEYS[9]), held_k
  elseif kind == 'keymonth' and has_key then spent[i], holds[i] = num(KEYS[10]), held_k
  else spent[i], holds[i] = tonumber(ARGV[base + 2]), 0 end
end
local amount = fixed
if ARGV[4] == '1' then
  local left = nil
  for i = 1, n do
    if limits[i] >= 0 then
      local l = limits[i] - spent[i] - holds[i]
      if left == nil or l < left then left = l end
    end
  end
  if left ~= nil and left > amount then amount = left end
end
for i = 1, n do
  if limits[i] >= 0 and spent[i] + holds[i] + amount > limits[i] then
    return {0, i, spent[i], holds[i], amount, 0, 0}
  end
end
if max_calls >= 0 then
  local calls = num(KEYS[6])
  if calls + open_s + 1 > max_calls then return {0, 0, 0, 0, 0, calls, open_s} end
end
local member = ARGV[2] .. '|' .. string.format('%.0f', amount)
local deadline = now + ttl
local function hold(key)
  redis.call('ZADD', key, deadline, member)
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end
hold(KEYS[1])
hold(KEYS[2])
if has_tree then hold(KEYS[3]) end
if has_key then hold(KEYS[8]) end
return {1, member, amount}
"""

# A ledger record reaches the server: its reservation (if any) is settled, a billed call's
# cost is added to the day, session (and tree) totals and its session's call count, and the
# record is appended to the stream, trimmed by age. With dedupe, an outbox entry already
# applied (a flush that died before clearing the outbox) is applied once only.
# KEYS: 1 stream, 2 open, 3 open:s, 4 open:t, 5 spent:d, 6 spent:s, 7 calls:s, 8 spent:t,
#       9 applied:<op id>; for a record that names a virtual key also 10 open:k,
#       11 spent:k:d, 12 spent:k:m
# ARGV: 1 record (JSON), 2 origin, 3 cost (nano-USD), 4 billed (1/0), 5 reservation member
#       ('' none), 6 tree (1/0), 7 retention ms, 8 day total keep ms, 9 session keep ms,
#       10 dedupe (1/0), 11 applied keep ms, 12 the record has a session (1/0: a gateway
#       request without one counts in no session's totals), 13 month total keep ms
RECORD = """
if ARGV[10] == '1' then
  if not redis.call('SET', KEYS[9], '1', 'NX', 'PX', ARGV[11]) then return 0 end
end
local has_tree = ARGV[6] == '1'
local in_session = ARGV[12] == '1'
local has_key = #KEYS >= 12
if ARGV[5] ~= '' then
  redis.call('ZREM', KEYS[2], ARGV[5])
  redis.call('ZREM', KEYS[3], ARGV[5])
  if has_tree then redis.call('ZREM', KEYS[4], ARGV[5]) end
  if has_key then redis.call('ZREM', KEYS[10], ARGV[5]) end
end
if ARGV[4] == '1' then
  if tonumber(ARGV[3]) > 0 then
    redis.call('INCRBY', KEYS[5], ARGV[3])
    redis.call('PEXPIRE', KEYS[5], ARGV[8])
    if in_session then
      redis.call('INCRBY', KEYS[6], ARGV[3])
      redis.call('PEXPIRE', KEYS[6], ARGV[9])
    end
    if has_tree then
      redis.call('INCRBY', KEYS[8], ARGV[3])
      redis.call('PEXPIRE', KEYS[8], ARGV[9])
    end
    if has_key then
      redis.call('INCRBY', KEYS[11], ARGV[3])
      redis.call('PEXPIRE', KEYS[11], ARGV[8])
      redis.call('INCRBY', KEYS[12], ARGV[3])
      redis.call('PEXPIRE', KEYS[12], ARGV[13])
    end
  end
  if in_session then
    redis.call('INCR', KEYS[7])
    redis.call('PEXPIRE', KEYS[7], ARGV[9])
  end
end
""" + _NOW_MS + """
local minid = string.format('%.0f', now - tonumber(ARGV[7]))
redis.call('XADD', KEYS[1], 'MINID', '~', minid, '*', 'r', ARGV[1], 'o', ARGV[2])
return 1
"""

# KEYS: the reservation's sets; ARGV: 1 member
RELEASE = """
for i = 1, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
return 1
"""

# A live process pushes its reservations' deadlines on. Returns 0 when the reservation is
# gone (settled, released, or already expired: it is not brought back).
# KEYS: the reservation's sets; ARGV: 1 member, 2 ttl ms
RENEW = _NOW_MS + """
local ttl = tonumber(ARGV[2])
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', now + ttl, ARGV[1])
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return 1
"""

# Each tier's breaker: "<streak>|<last failure, server time in s>".
# KEYS: 1 breaker hash; ARGV: 1 tier, 2 failed (1/0)
BREAKER_RECORD = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local streak, last = 0, 0
if cur then
  local bar = string.find(cur, '|', 1, true)
  if bar then
    streak = tonumber(string.sub(cur, 1, bar - 1)) or 0
    last = tonumber(string.sub(cur, bar + 1)) or 0
  end
end
if ARGV[2] == '1' then
  local t = redis.call('TIME')
  streak = streak + 1
  last = tonumber(t[1]) + tonumber(t[2]) / 1000000
elseif streak == 0 then
  return 0
else
  streak = 0
end
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d|%.3f', streak, last))
return 1
"""

# KEYS: 1 breaker hash; ARGV: 1 tier. Returns {state or '', seconds, microseconds}.
BREAKER_STATE = """
local t = redis.call('TIME')
return {redis.call('HGET', KEYS[1], ARGV[1]) or '', t[1], t[2]}
"""

# A gateway session's pin, with its TTL, in a sorted set by last use bounded to max pins
# (the least recently pinned dropped first).
# KEYS: 1 pin key, 2 pins set; ARGV: 1 state (JSON), 2 ttl ms, 3 max pins
PIN_PUT = _NOW_MS + """
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('ZADD', KEYS[2], now, KEYS[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl)
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if over > 0 then
  for _, k in ipairs(redis.call('ZRANGE', KEYS[2], 0, over - 1)) do redis.call('DEL', k) end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, over - 1)
end
redis.call('PEXPIRE', KEYS[2], ttl)
return 1
"""

SCRIPTS = {"reserve": RESERVE, "record": RECORD, "release": RELEASE, "renew": RENEW,
           "breaker_record": BREAKER_RECORD, "breaker_state": BREAKER_STATE,
           "pin_put": PIN_PUT}
