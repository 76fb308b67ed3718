"""Background work on a real task queue (Huey): SQLite-backed inside ``medlabel serve`` by
default, Redis-backed for several servers and ``medlabel worker`` processes."""
