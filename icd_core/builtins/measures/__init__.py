"""Built-in measures: wall clock, the cache model, cachegrind and perf."""
