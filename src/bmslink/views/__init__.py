"""Terminal views: what a person watches (rich on a terminal, plain lines in a log)."""
