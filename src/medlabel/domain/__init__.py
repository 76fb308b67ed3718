"""The pure core: no web, database or file-format libraries are imported here."""
