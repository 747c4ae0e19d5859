"""Ledger: self-hosted logging and error tracking."""

__version__ = "0.1.0"
