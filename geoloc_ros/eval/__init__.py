"""Offline replay, metrics, plots and reports."""
