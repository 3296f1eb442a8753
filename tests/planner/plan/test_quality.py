"""A weight format's quality loss is the published perplexity increase of the model's family and size, not one
figure per method: read from the tables, interpolated between sizes, scaled below 7B, conservative for a family
without figures, and judged by llama.cpp's own file type where it stores the format."""

from __future__ import annotations

import math

import pytest
from optiplan import profiles
from optiplan.planner.analytic.params import param_counts
from optiplan.planner.catalog.hardware import resolve_hardware
from optiplan.planner.catalog.models import resolve_model
from optiplan.planner.plan.quality import QUALITY_FILE, family_of, methods, published_loss
from optiplan.planner.plan.techniques import Context, all_techniques
from optiplan.planner.schema import Workload


def test_every_point_names_a_listed_method_family_and_quoted_source():
    data = profiles.read_yaml(QUALITY_FILE)
    for p in data["points"]:
        assert p["method"] in data["methods"] and p["family"] in data["families"]
        assert data["sources"][p["source"]]["quote"] and data["sources"][p["source"]]["url"].startswith("https://")
        assert ("ratio" in p) != ("baseline" in p and "quantized" in p), p


def test_families_are_told_apart_by_config():
    assert family_of(resolve_model("llama-2-7b")) == "llama-2"
    assert family_of(resolve_model("llama-3.1-70b")) == "llama-3"
    assert family_of(resolve_model("llama-3.2-1b")) == "llama-3"
    assert family_of(resolve_model("qwen2.5-7b")) is None
    llama2 = resolve_model("llama-2-7b")
    assert family_of(llama2.model_copy(update={"vocab_size": 32016})) == "llama-2"  # CodeLlama's vocabulary
    assert family_of(llama2.model_copy(update={"vocab_size": 50000})) is None


def test_a_measured_size_takes_the_tables_figure():
    # AWQ Table 4: Llama-2-7B 5.47 -> 5.60 with AWQ; "7B" is 6.74B of parameters, within the 10% a size is named by
    loss = published_loss("awq-int4-g128", resolve_model("llama-2-7b"))
    assert loss.pct == pytest.approx(100 * (5.60 / 5.47 - 1), abs=0.01)
    assert "AWQ, arXiv 2306.00978v5 Table 4" in loss.source and "5.47 -> 5.6" in loss.source
    # llama.cpp's ratio for Llama-3-70B Q4_K_M
    assert published_loss("gguf-q4_k_m", resolve_model("llama-3.1-70b")).pct == pytest.approx(5.09, abs=0.01)


def test_between_sizes_the_increase_is_interpolated_in_log_size():
    spec = resolve_model("llama-2-13b")
    size = param_counts(spec).total / 1e9
    t = math.log(size / 7) / math.log(70 / 7)
    expected = (1 - t) * 100 * (1.014242 - 1) + t * 100 * (1.012136 - 1)
    loss = published_loss("gguf-q4_k_m", spec)
    assert loss.pct == pytest.approx(expected, abs=0.01) and "interpolated" in loss.source


def test_small_models_lose_more_and_a_70b_figure_is_not_scaled_to_8b():
    small = published_loss("gguf-q4_k_m", resolve_model("llama-3.2-1b"))
    size = param_counts(resolve_model("llama-3.2-1b")).total / 1e9
    assert small.pct == pytest.approx(100 * (1.029127 - 1) * (7 / 1.1 / size) ** 0.3, abs=0.01)
    assert "size^-0.3" in small.source
    # Llama-2's Q4_0 has a 70B figure only: a 13B takes it as it is, not scaled up
    assert published_loss("gguf-q4_0", resolve_model("llama-2-13b")).pct == pytest.approx(3.61, abs=0.01)
    # Llama-3's RTN: FLUTE's 8B figure, not the disputed 39% of arXiv 2404.14047
    assert published_loss("rtn-int4-g128", resolve_model("llama-3.1-8b")).pct == pytest.approx(9.84, abs=0.01)


def test_a_family_without_figures_takes_the_most_a_listed_family_loses():
    qwen = published_loss("awq-int4-g128", resolve_model("qwen2.5-7b"))
    llama3 = published_loss("awq-int4-g128", resolve_model("llama-3.1-8b"))
    llama2 = published_loss("awq-int4-g128", resolve_model("llama-2-7b"))
    assert qwen.pct == pytest.approx(llama3.pct, abs=0.05) and qwen.pct > llama2.pct
    assert "qwen2.5-7b is of no family" in qwen.source and "(llama-3)" in qwen.source
    # a listed family without the method's figures: Q4_0 has Llama-3-8B's and Llama-2-70B's
    q4_0 = published_loss("gguf-q4_0", resolve_model("llama-2-7b"))
    assert "llama-2 has no published gguf-q4_0 figure" not in q4_0.source  # it has the 70B one, taken as it is
    assert q4_0.pct == pytest.approx(3.61, abs=0.01)
    assert published_loss("not-a-method", resolve_model("llama-2-7b")) is None
    assert set(methods()) >= {"rtn-int4-g128", "gptq-int4-g128", "awq-int4-g128", "gguf-q4_k_m", "gguf-q8_0"}


def _ctx(model: str, engine: str) -> Context:
    return Context(spec=resolve_model(model), hw=resolve_hardware("rtx-4090"), devices=1,
                   workload=Workload(engine=engine))


def test_llama_cpp_judges_int4_and_int8_by_its_own_file_types():
    techniques = all_techniques()
    int4, int8 = techniques["weight-int4"], techniques["weight-int8"]
    gguf = _ctx("llama-3.1-8b", "llama.cpp")
    assert int4.loss(gguf) == pytest.approx(2.91, abs=0.01) and "llama.cpp tools/perplexity" in int4.source(gguf)
    assert int8.loss(gguf) == pytest.approx(0.08, abs=0.01)
    rtn = _ctx("llama-3.1-8b", "transformers")
    assert int4.loss(rtn) == pytest.approx(9.84, abs=0.01)
    assert int8.loss(rtn) == 0.1 and "LLM.int8()" in int8.source(rtn)  # no per-size figure: the budgeted 0.1%
    assert techniques["weight-int4-awq"].loss(_ctx("llama-2-7b", "vllm")) == pytest.approx(2.38, abs=0.01)
