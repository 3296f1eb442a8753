"""The analytic model: parameters, KV cache, efficiency factors, the one Setup builder, step costs, memory, the profile."""
