"""Benchmarks behind `geoloc bench ...`: speed and accuracy measured side by side, to JSON."""
