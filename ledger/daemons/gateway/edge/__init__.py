"""Who is calling: principals, API-key cache, breaker, rate limits, throttles, account sessions."""
