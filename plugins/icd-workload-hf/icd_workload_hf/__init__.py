"""icd workloads on real models and graph sources from their activity."""
