"""Data in: read a user's file, check it is the file, split it, fingerprint it, keep it as Arrow."""
