"""Fault-injection components for icd tests."""
