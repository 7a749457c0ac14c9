"""The run engine: the pipeline and what it needs (context, events, rollback, caches, measuring,
statistics, run directories)."""
