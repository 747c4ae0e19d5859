"""Who is calling: principals, key cache, breaker, rate limits, throttles, sessions, tickets."""
