"""Deliberately broken icd plugin for tests."""
