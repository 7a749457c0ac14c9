"""icd adapter plugin: ``kv`` (KV-cache block eviction)."""
