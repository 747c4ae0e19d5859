"""Alerts (DESIGN §11): rules on error groups and log volume, channels, history, snooze, outbox.

    channels.py   where alerts go (webhook, Slack, e-mail): validation and storage
    senders.py    how one alert is rendered and sent to one channel, and what it answered
    rules.py      what fires: validation and storage of rules, snoozes
    evaluate.py   deciding that a rule fires (notifications, periodic counts) and recording it
    outbox.py     due deliveries claimed with a lease, attempts recorded, backoff for 24 h
    history.py    the alerts that fired, with their deliveries and attempts

Everything is stored in the logs database (beside ``error_groups``, which the evaluator reads).
Nothing here knows HTTP servers, gRPC or the CLI; the alerts daemon, the gateway (through the
daemon) and ``ledger alerts`` call these functions.
"""
