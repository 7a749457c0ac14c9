"""An icd plugin whose hook misspells an argument, for tests."""
