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


def catalog_random_model(name: str, dtype: str, device: str = "cpu"):
    """A catalog model (or a config.json file) with random weights, built in memory on `device` at `dtype`: its
    real shapes without its weights (`profile --measure` saves it; the GPU benchmark times it where it was built)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from ..catalog.models import catalog_entry, read_config_file
    from .runtime import quiet_libraries, torch_dtype

    quiet_libraries()
    path = Path(name).expanduser()
    fields = read_config_file(path) if path.is_file() else dict(catalog_entry(name)["config"])
    fields = {k: v for k, v in fields.items() if k not in ("quantization_config", "auto_map")}
    config = AutoConfig.for_model(fields.pop("model_type"), **fields)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype(dtype))
    return model.eval()
