"""Metrics for scrapers (Prometheus)."""
