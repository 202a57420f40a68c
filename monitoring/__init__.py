"""Metrics (Prometheus); dashboards and alerts live beside this package."""
