"""Triggers: waits that run on the triggerer's event loop instead of holding a worker slot."""
