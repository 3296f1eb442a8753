"""Jinja2 templates for reports (Markdown, HTML) and deployment configs (vLLM, SGLang, TGI,
TensorRT-LLM, llama.cpp, Kubernetes, docker compose, a CI workflow)."""

from pathlib import Path

TEMPLATES_DIR = Path(__file__).resolve().parent
