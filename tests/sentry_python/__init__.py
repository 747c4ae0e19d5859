"""Programs that use the real sentry-sdk against a running Ledger (run as subprocesses)."""
