"""Optimizers that change a real Hugging Face model, one file per technique family (quantize,
attention, kv cache, batching, speculative decoding, compile, prune), the optimized-model artifact
and verification. Each imports torch lazily; this package itself imports nothing heavy."""
