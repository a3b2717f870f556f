"""Where responses, chains and conversations are kept (see base.py). Importing this package also sets
one process-wide SQLite binding, for every database respgate opens (store, spend, keys, prompts)."""

import sqlite3

# Python's sqlite3 (3.11-3.13) binds a None through its adapter lookup: with no adapter registered for
# NoneType it asks its protocol type for `__adapt__`, raising and clearing an AttributeError for every
# NULL parameter. A spend row has several: callgrind counted ~2,000 instructions per NULL, 17,000 per
# request. This adapter hands the None back, which binds NULL as before, without the exception.
sqlite3.register_adapter(type(None), lambda value: value)
