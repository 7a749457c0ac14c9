"""icd adapter plugin: ``quant`` (post-training min-max quantization of weights)."""
