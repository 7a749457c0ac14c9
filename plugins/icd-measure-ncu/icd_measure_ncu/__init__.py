"""icd measure plugin: ``ncu`` (Nsight Compute L2 hit rate) and ``nvml`` (energy per token)."""
