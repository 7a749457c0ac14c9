"""Duplicate-name icd plugin for tests."""
