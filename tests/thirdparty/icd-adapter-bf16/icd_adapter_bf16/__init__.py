"""Example third-party adapter plugin for icd (see README: Writing a plugin)."""
