"""Synthetic geo-referenced worlds and sensor simulation."""
