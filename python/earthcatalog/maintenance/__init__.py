"""Maintenance operations (the Python tool's ``earthcatalog.maintenance`` package)."""
