"""The terminal UI: the only package that imports textual (``ledger tail``).

``rows`` is plain Python (what the table shows and counts); ``tail_app`` is the Textual app.
"""
