"""Importing scenario files through the public APIs (`baotuan load`), `baotuan status`, and the demo tokens."""
