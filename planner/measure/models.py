"""Random-weight models saved as Hugging Face folders: timing does not depend on the weights' values, so
calibration and the accuracy benchmark measure models of any shape without downloading one."""

from __future__ import annotations

from pathlib import Path


def random_model(folder: Path, hidden: int, layers: int, heads: int = 4, kv_heads: int = 2, vocab: int = 4096,
                 intermediate: int | None = None, dtype: str = "fp32") -> Path:
    """A Llama-architecture model with random weights saved as a Hugging Face folder (for
    calibration and the accuracy benchmark: timing does not depend on the weights' values)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from .runtime import quiet_libraries, torch_dtype

    quiet_libraries()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate or hidden * 8 // 3,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                         max_position_embeddings=4096, tie_word_embeddings=False)
    model = LlamaForCausalLM(config).to(torch_dtype(dtype))
    model.save_pretrained(folder)
    return folder
