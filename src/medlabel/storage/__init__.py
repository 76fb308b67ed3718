"""Adapters for persistence: the relational database and the content-addressed blob store."""
