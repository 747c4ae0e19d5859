"""The ingest queue's wire format, owned by no daemon.

Ingest produces into it, the writers (in the ingest daemon) consume it, the gateway's live feeds
read its notification and tail streams, and ``ledger queue`` inspects it; all of them speak
through this package:

- ``names``: every Redis key and channel of a project's queue, notifications and tail;
- ``limits``: the caps and timings the producer and its readers agree on;
- ``scripts``: the Lua scripts, with named and documented arguments, and their encoder;
- ``client``: ``Queue``, the scripts bound to one Redis client (enqueue, tail, ack);
- ``entries``: one request's logs as a stream entry, and back;
- ``rows``: the binary COPY tuple of one log;
- ``backlog``: the queue as operators see it (depth, lag, dead letters, replay).

Import rule: nothing here imports typer, rich, textual, fastapi, uvicorn or grpc.
"""
