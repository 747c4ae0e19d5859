"""The queue's Lua scripts, with named and documented keys and arguments.

Redis hands a script two positional arrays, ``KEYS`` and ``ARGV``. Here every script declares
its keys and arguments by name (with what each one is), and ``Script`` does the rest on both
sides: ``lua`` starts the script with one ``local`` per name, and ``encode`` turns keyword
arguments into ``KEYS``/``ARGV`` in that order. An argument marked ``many`` is a list: it is sent
as its length followed by its items, and the script sees ``<name>_at`` (where its first item is
in ``ARGV``) and ``<name>_n`` (how many there are). Keys are ``k_<name>`` in the script.

JSON is never built in Lua: the pub/sub envelope of an error notification is a template made by
``orjson`` here (``NOTIFICATION_ENVELOPE``), and the script only puts the stream id the XADD gave
and the notification (already JSON) into its slots.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ledger.queue.limits import NOTIFICATIONS_MAXLEN, TAIL_MAXLEN


@dataclass(frozen=True, slots=True)
class Arg:
    """One named argument of a script."""

    name: str
    doc: str
    many: bool = False  # a list: its length, then its items


@dataclass(frozen=True)
class Script:
    """A Lua script whose keys and arguments have names."""

    name: str
    keys: tuple[tuple[str, str], ...]  # (name, what it is), in KEYS order
    args: tuple[Arg, ...]
    body: str

    @property
    def lua(self) -> str:
        """The script as Redis runs it: the named locals, then the body."""
        lines = [f"-- {self.name}"]
        lines += [f"local k_{name} = KEYS[{i}]  -- {doc}"
                  for i, (name, doc) in enumerate(self.keys, 1)]
        lines.append("local at = 1")
        for arg in self.args:
            if arg.many:
                lines.append(f"local {arg.name}_n = tonumber(ARGV[at])  -- {arg.doc}")
                lines.append(f"local {arg.name}_at = at + 1")
                lines.append(f"at = at + 1 + {arg.name}_n")
            else:
                lines.append(f"local {arg.name} = ARGV[at]  -- {arg.doc}")
                lines.append("at = at + 1")
        return "\n".join(lines) + "\n" + self.body

    def encode(self, keys: Mapping[str, str], args: Mapping[str, Any],
               ) -> tuple[list[str], list[Any]]:
        """``KEYS`` and ``ARGV`` for one run, from values by name.

        Raises:
            ValueError: a key or argument is missing or unknown (a bug of the caller).
        """
        key_names, arg_names, lists = self._layout
        if keys.keys() != key_names.keys():
            raise ValueError(f"{self.name}: keys {sorted(keys)} are not {sorted(key_names)}")
        if args.keys() != arg_names.keys():
            raise ValueError(f"{self.name}: arguments {sorted(args)} are not {sorted(arg_names)}")
        argv: list[Any] = []
        for name in arg_names:
            value = args[name]
            if name in lists:
                items: Sequence[Any] = value
                argv.append(len(items))
                argv.extend(items)
            else:
                argv.append(value)
        return [keys[name] for name in key_names], argv

    @functools.cached_property
    def _layout(self) -> tuple[dict[str, None], dict[str, None], frozenset[str]]:
        """Key names and argument names in order (dicts: ordered, with set-like keys views),
        and the arguments that are lists; worked out once per script, not once per call."""
        return (dict.fromkeys(name for name, _ in self.keys),
                dict.fromkeys(arg.name for arg in self.args),
                frozenset(arg.name for arg in self.args if arg.many))


def _envelope() -> tuple[bytes, bytes, bytes]:
    """The pub/sub message of one error notification, ``{"event_id": …, "data": …}``, as the
    three pieces around its two slots (the stream id, then the notification's JSON)."""
    id_slot, data_slot = "\x01id\x01", "\x01data\x01"
    template = orjson.dumps({"event_id": id_slot, "data": data_slot})
    head, _, rest = template.partition(orjson.dumps(id_slot))
    middle, _, tail = rest.partition(orjson.dumps(data_slot))
    return head + b'"', b'"' + middle, tail


#: ``head .. stream id .. middle .. notification JSON .. tail``: see ``ENQUEUE_MANY``.
NOTIFICATION_ENVELOPE = _envelope()


ENQUEUE_MANY = Script(
    "enqueue_many",
    keys=(
        ("queue", "the project's queue stream"),
        ("depth", "logs queued and not yet stored"),
        ("quota", "logs accepted today"),
        ("notifications", "the capped stream of error notifications"),
        ("tail", "the capped stream of the newest logs"),
        ("tail_watchers", "exists while a gateway has tail clients"),
    ),
    args=(
        Arg("max_depth", "refuse a request when the depth would pass this"),
        Arg("quota_ttl", "seconds the day's counter lives"),
        Arg("notifications_channel", "where each notification is published"),
        Arg("tail_channel", "poked once per request when its logs reach the tail"),
        Arg("envelope_head", "the published JSON up to the stream id"),
        Arg("envelope_middle", "from after the stream id up to the notification"),
        Arg("envelope_tail", "after the notification"),
        Arg("field_names", "the names of an entry's fields", many=True),
        Arg("jobs", "per request (one project's, in order): its logs n, its daily quota"
                    " (<= 0: none), its entry's field values (one per field name), then two"
                    " lists, each its length and its items: one JSON per error log"
                    " (notifications), one JSON per log (the tail, fed only while watched)",
            many=True),
    ),
    # One run for the requests of one project that one coalesced call carries, each taken as
    # if it came alone, in order: checked against the depth and quota the ones before it left,
    # refused with nothing written, or queued.
    #
    # Returns {watched, view error or false, result per request...}, result = {0, entry id}
    # (queued) | {1, depth} (queue full) | {2, used} (quota) | {3, error} (Redis refused a
    # write: nothing of this request was queued, and the requests after it did not run; the
    # script stops there and returns the results so far).
    #
    # Redis does not roll a script back when a write fails, so every write goes through
    # pcall: an error thrown out of the script after request 1 was queued would make the
    # caller think request 1 failed too (retried, it would be stored twice). A request's
    # record (XADD, INCRBY depth, INCRBY quota) is all or nothing: a failed write undoes the
    # ones before it (XDEL, DECRBY; neither can fail on the keys just written, and after a
    # write Redis no longer refuses one for memory). Under maxmemory Redis refuses only a
    # script's first write (6.2 and 7 alike), so out of memory refuses the whole run, nothing
    # written. The notifications and the tail are views, written after the record: a failure
    # there leaves the request queued (it is reported, not undone).
    body=f"""
local function failed(reply) return type(reply) == 'table' and reply.err ~= nil end
local queued = tonumber(redis.call('GET', k_depth) or '0')
local used = tonumber(redis.call('GET', k_quota) or '0')
local watched = redis.call('EXISTS', k_tail_watchers)
local most = tonumber(max_depth)
local out = {{watched, false}}
local view_error = nil
-- XADD's arguments: the field names in place once, each request's values put between them.
local entry = {{}}
for j = 0, field_names_n - 1 do entry[2 * j + 1] = ARGV[field_names_at + j] end
-- One request's record, all or nothing: its XADD, INCRBY depth, INCRBY quota, a failed write
-- undoing the ones before it. Returns the entry id, the depth and today's count, or nil and
-- the error.
local function record(count)
  local id = redis.pcall('XADD', k_queue, '*', unpack(entry))
  if failed(id) then return nil, id.err end
  local depth = redis.pcall('INCRBY', k_depth, count)
  if failed(depth) then
    redis.pcall('XDEL', k_queue, id)
    return nil, depth.err
  end
  local today = redis.pcall('INCRBY', k_quota, count)
  if failed(today) then
    redis.pcall('DECRBY', k_depth, count)
    redis.pcall('XDEL', k_queue, id)
    return nil, today.err
  end
  return id, depth, today
end
local i, stop = jobs_at, jobs_at + jobs_n
while i < stop do
  local count, limit = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  local values_at = i + 2
  local notes_at = values_at + field_names_n + 1
  local notes_n = tonumber(ARGV[notes_at - 1])
  local tail_at = notes_at + notes_n + 1
  local tail_n = tonumber(ARGV[tail_at - 1])
  i = tail_at + tail_n
  if queued + count > most then
    out[#out + 1] = {{1, queued}}
  elseif limit > 0 and used + count > limit then
    out[#out + 1] = {{2, used}}
  else
    for j = 0, field_names_n - 1 do entry[2 * j + 2] = ARGV[values_at + j] end
    local id, depth, today = record(count)
    if not id then
      out[#out + 1] = {{3, depth}}
      return out
    end
    if today == count then redis.pcall('EXPIRE', k_quota, quota_ttl) end
    queued, used = depth, today
    for j = notes_at, notes_at + notes_n - 1 do
      local eid = redis.pcall('XADD', k_notifications, 'MAXLEN', '~', {NOTIFICATIONS_MAXLEN},
                              '*', 'data', ARGV[j])
      if failed(eid) then
        view_error = view_error or eid.err
      else
        redis.pcall('PUBLISH', notifications_channel,
                    envelope_head .. eid .. envelope_middle .. ARGV[j] .. envelope_tail)
      end
    end
    if watched == 1 and tail_n > 0 then
      local last
      for j = tail_at, tail_at + tail_n - 1 do
        local tid = redis.pcall('XADD', k_tail, 'MAXLEN', '~', {TAIL_MAXLEN}, '*', 'data', ARGV[j])
        if failed(tid) then view_error = view_error or tid.err else last = tid end
      end
      if last then redis.pcall('PUBLISH', tail_channel, last) end
    end
    out[#out + 1] = {{0, id}}
  end
end
if view_error then out[2] = view_error end
return out
""")

TAIL = Script(
    "tail",
    keys=(("tail", "the capped stream of the newest logs"),),
    args=(
        Arg("tail_channel", "poked once when logs reach the tail"),
        Arg("logs", "one JSON per log", many=True),
    ),
    # For a request whose enqueue found the first tail watcher: the queue step is done, the
    # tail (a view, not the record) catches up. Returns the last stream id.
    body=f"""
local last
for i = logs_at, logs_at + logs_n - 1 do
  last = redis.call('XADD', k_tail, 'MAXLEN', '~', {TAIL_MAXLEN}, '*', 'data', ARGV[i])
end
if last then redis.call('PUBLISH', tail_channel, last) end
return last
""")

ACK = Script(
    "ack",
    keys=(
        ("queue", "the project's queue stream"),
        ("depth", "logs queued and not yet stored"),
        ("dead_letters", "the stream of logs PostgreSQL refused"),
    ),
    args=(
        Arg("group", "the writers' consumer group"),
        Arg("failed_at", "when the dead letters failed (ISO 8601)"),
        Arg("acks", "per entry: its id, its logs n, its dead letters d, then d triples"
                    " (error, log JSON, components JSON)", many=True),
    ),
    # An entry is acknowledged, deleted and its dead letters recorded only if this XACK removed
    # it from the pending list: two writers that stored the same entry (one of them reclaimed
    # it) never decrement the depth twice nor dead-letter a log twice. Returns the logs
    # decremented.
    body="""
local i = acks_at
local stop = acks_at + acks_n
local done = 0
while i < stop do
  local id, count, d = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local mine = redis.call('XACK', k_queue, group, id) == 1
  if mine then
    redis.call('XDEL', k_queue, id)
    done = done + count
    for j = 0, d - 1 do
      local dead = i + 3 + 3 * j
      redis.call('XADD', k_dead_letters, '*', 'error', ARGV[dead], 'log', ARGV[dead + 1],
                 'components', ARGV[dead + 2], 'entry_id', id, 'failed_at', failed_at)
    end
  end
  i = i + 3 + 3 * d
end
if done > 0 and redis.call('DECRBY', k_depth, done) < 0 then redis.call('SET', k_depth, 0) end
return done
""")
