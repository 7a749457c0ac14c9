"""icd-bridge-tvm: the run's layout carried through TVM Relax."""
