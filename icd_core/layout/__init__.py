"""Layout maths: permutations, co-access graphs, layout metrics, tensors, the cache model."""
