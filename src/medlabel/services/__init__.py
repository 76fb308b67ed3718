"""Use cases. Each function runs inside a transaction the caller opens; no HTTP here."""
