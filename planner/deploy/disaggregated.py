"""Prefill/decode disaggregated launches on one node: the plan's prefill and decode instances, each on its own GPUs,
and the engine's router in front of them on the service port.

- **SGLang**: `--disaggregation-mode prefill|decode` servers, the prompt's cache moved by NIXL (UCX over NVLink inside
  the node), and `python -m sglang_router.launch_router --pd-disaggregation --prefill URL BOOTSTRAP_PORT --decode URL`
  (sglang 0.5.2 server_args.py; sglang-router 0.1.9 launch_router.py; docs/advanced_features/pd_disaggregation.md).
- **TensorRT-LLM**: context and generation `trtllm-serve` workers whose extra options carry a
  `cache_transceiver_config` (the context workers without the overlap scheduler), and `trtllm-serve disaggregated -c`
  with their URLs (TensorRT-LLM docs, "Disaggregated Serving").
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import yaml

from .config import PORT, EngineConfig, check_options

PD_ENGINES = ("sglang", "trtllm")
# ports of the instances on the node: prefill from the first, decode from the second; SGLang's bootstrap ports (the
# prefill server's side of the cache transfer) from its default 8998
PORTS = {"sglang": (30000, 30100), "trtllm": (8001, 8101)}
BOOTSTRAP = 8998
# The cache's transport between TensorRT-LLM workers, set explicitly: the documented default has changed between
# releases (UCX, then NIXL)
TRTLLM_TRANSCEIVER = {"backend": "UCX"}


@dataclass
class Role:
    name: str  # prefill-0, decode-1, router
    argv: list[str]
    gpus: str | None = None  # CUDA_VISIBLE_DEVICES of an instance


def _gpus(index: int, size: int) -> str:
    return ",".join(str(g) for g in range(index * size, (index + 1) * size))


def _instance(cfg: EngineConfig, options: dict[str, Any], extra: dict[str, Any] | None = None) -> EngineConfig:
    """One instance's config: the plan's options with its own. Speculative decoding stays on the prefill instances
    too: with EAGLE and MTP the prefill server computes the draft's first state the decode server continues from."""
    one = replace(cfg, options={**cfg.options, **options}, extra=extra if extra is not None else dict(cfg.extra))
    check_options(one)
    return one


def pd_launch(cfg: EngineConfig, prefill: int, decode: int, size: int) -> tuple[list[Role], dict[str, str]]:
    """The roles serve.sh starts (each instance and the router) and the extra files they read (relative paths)."""
    first_prefill, first_decode = PORTS[cfg.engine]
    roles: list[Role] = []
    files: dict[str, str] = {}
    if cfg.engine == "sglang":
        router = ["python", "-m", "sglang_router.launch_router", "--pd-disaggregation"]
        for i in range(prefill):
            port = first_prefill + i
            one = _instance(cfg, {"port": port, "disaggregation-mode": "prefill",
                                  "disaggregation-transfer-backend": "nixl", "disaggregation-bootstrap-port": BOOTSTRAP + i})
            roles.append(Role(f"prefill-{i}", one.argv(), _gpus(i, size)))
            router += ["--prefill", f"http://127.0.0.1:{port}", str(BOOTSTRAP + i)]
        for j in range(decode):
            port = first_decode + j
            one = _instance(cfg, {"port": port, "disaggregation-mode": "decode", "disaggregation-transfer-backend": "nixl"})
            roles.append(Role(f"decode-{j}", one.argv(), _gpus(prefill + j, size)))
            router += ["--decode", f"http://127.0.0.1:{port}"]
        roles.append(Role("router", [*router, "--host", "0.0.0.0", "--port", str(PORT)]))
        return roles, files
    context_extra = {**cfg.extra, "disable_overlap_scheduler": True, "cache_transceiver_config": TRTLLM_TRANSCEIVER}
    generation_extra = {**cfg.extra, "cache_transceiver_config": TRTLLM_TRANSCEIVER}
    urls: dict[str, list[str]] = {"context": [], "generation": []}
    for kind, count, first, offset, extra in (("prefill", prefill, first_prefill, 0, context_extra),
                                              ("decode", decode, first_decode, prefill, generation_extra)):
        name = "context" if kind == "prefill" else "generation"
        path = f"extra-llm-api-options-{name}.yaml"
        files[path] = f"# TensorRT-LLM LLM API options of the {name} workers: passed with --extra_llm_api_options.\n" + \
            yaml.safe_dump(extra, sort_keys=False)
        for i in range(count):
            one = _instance(cfg, {"port": first + i}, extra)
            roles.append(Role(f"{kind}-{i}", one.argv(path), _gpus(offset + i, size)))
            urls[name].append(f"localhost:{first + i}")
    files["disagg-config.yaml"] = "# trtllm-serve disaggregated -c disagg-config.yaml: the router and its workers.\n" + \
        yaml.safe_dump({"hostname": "0.0.0.0", "port": PORT, "backend": "pytorch",
                        "context_servers": {"num_instances": prefill, "urls": urls["context"]},
                        "generation_servers": {"num_instances": decode, "urls": urls["generation"]}}, sort_keys=False)
    roles.append(Role("router", ["trtllm-serve", "disaggregated", "-c", "disagg-config.yaml"]))
    return roles, files
