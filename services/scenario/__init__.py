"""Importing scenario files through the public APIs (`baotuan load`), and `baotuan status`."""
