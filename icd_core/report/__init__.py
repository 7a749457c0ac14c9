"""Reporting: the metrics document, gates, the verdict, tables, comparisons, the environment."""
