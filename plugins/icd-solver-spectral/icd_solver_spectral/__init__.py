"""icd solver plugin: ``spectral`` (recursive spectral bisection to cache-line blocks)."""
