"""icd adapter plugin: ``sparsity`` (N:M magnitude pruning)."""
