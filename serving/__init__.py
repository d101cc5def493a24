"""The inference service for the registered champion (`zero2one serve`)."""
