"""The validation set (benchmarks/published/) is what its README says it is: every point's value as its quote prints
it, one id per point, a category that fits its metric, a device and an engine the harness knows, a source that says
where its text was read, and the README's counts of the set as they stand. The accuracy card rests on these points:
a value typed wrong or a count left stale would move the card without anything in the model moving."""

from __future__ import annotations

import collections
import functools
import re
from pathlib import Path

import pytest
import yaml
from optiplan.planner.catalog.hardware import resolve_hardware

PUBLISHED = Path(__file__).resolve().parents[3] / "benchmarks" / "published"
ENGINES = {"vllm", "sglang", "trtllm", "tgi", "llama.cpp", "transformers", "gpt-fast", "lmdeploy", "mlc", "other"}
# the categories a metric may be filed under (README: a loaded inter-token latency is filed under e2e-latency; a
# decode figure at one request, or a stated-light load, under batch1-decode)
CATEGORIES = {
    "tpot_ms": {"batch1-decode", "e2e-latency"},
    "decode_tokens_per_s": {"batch1-decode"},
    "prefill_tokens_per_s": {"ttft"},
    "ttft_ms": {"ttft"},
    "ttft_median_ms": {"ttft"},
    "output_tokens_per_s": {"request-throughput"},
    "request_latency_ms": {"e2e-latency"},
    "memory_gib": {"memory"},
    "kv_cache_tokens": {"kv-cache"},
}
MEMORY = {"memory", "kv-cache"}


@functools.cache
def sources() -> tuple[tuple[str, dict], ...]:
    return tuple((path.stem, yaml.safe_load(path.read_text())) for path in sorted(PUBLISHED.glob("*.yaml")))


def points() -> list[dict]:
    return [p for _, data in sources() for p in data["points"]]


def printed_forms(value: float) -> set[str]:
    """The ways a source prints `value`: as recorded (with or without a trailing .0), at 1-4 decimals, or, for a
    round thousand-multiple, in the "k" shorthand ("22.3k" for 22,300)."""
    forms = {str(value), f"{value:g}"}
    if float(value).is_integer():
        forms |= {str(int(value)), f"{int(value)}.0"}
    forms |= {f"{value:.{d}f}" for d in range(1, 5)}
    if value >= 1000 and (value / 100).is_integer():
        forms.add(f"{value / 1000:g}k")
    return forms


def printed_in(value: float, quote: str) -> bool:
    """Whether `quote` prints `value` in one of its forms, as a number of its own (thousands separators aside)."""
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", quote)
    return any(re.search(rf"(?<![\d.]){re.escape(form)}(?!\d)", text) for form in printed_forms(value))


def test_every_point_has_an_id_of_its_own():
    ids = collections.Counter(p["id"] for p in points())
    assert [i for i, n in ids.items() if n > 1] == []


@pytest.mark.parametrize("source,data", sources(), ids=[s for s, _ in sources()])
def test_every_value_is_printed_in_its_quote(source, data):
    """Values are recorded exactly as published: each appears in its point's quote (thousands separators aside)."""
    missing = [(p["id"], p["value"]) for p in data["points"] if not printed_in(p["value"], p["quote"])]
    assert missing == []


def test_a_value_missing_from_its_quote_is_caught():
    """The check above fails on a value its quote does not print (a digit slipped, a unit converted)."""
    quote = "| 128/2048 | 112,676 | 40,572 | 10,829 |"
    assert printed_in(40572, quote)
    assert not printed_in(40527, quote)
    assert not printed_in(40.572, quote)
    assert "22.3k" in printed_forms(22300)


def test_every_point_is_filed_under_a_category_its_metric_allows():
    wrong = [(p["id"], p["metric"], p["category"]) for p in points()
             if p["category"] not in CATEGORIES.get(p["metric"], set())]
    assert wrong == []


def test_every_point_names_a_catalog_device_and_a_known_engine():
    devices = {p["hardware"] for p in points()}
    assert all(resolve_hardware(d).id == d for d in devices)
    assert {p["engine"] for p in points()} <= ENGINES


def test_every_source_says_where_its_text_was_read():
    """A source has a title, an https address and how it was retrieved; a file read from a Git repository is pinned
    to the commit it was read at (a thread, a pull request or a docs page has no commit to pin)."""
    for name, data in sources():
        src = data["source"]
        assert src["title"] and src["retrieved_via"], name
        assert src["url"].startswith("https://"), name
        if "/blob/" in src["url"]:
            assert re.search(r"/blob/[0-9a-f]{40}/", src["url"]), name


def readme_table(readme: str, heading: str) -> dict[str, int]:
    section = readme.split(f"### {heading}", 1)[1].split("###", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^\| (\S+) \| +(\d+) \|$", section, re.MULTILINE)}


def test_the_readme_counts_the_set_as_it_stands():
    readme = (PUBLISHED / "README.md").read_text()
    pts = points()
    memory = sum(p["category"] in MEMORY for p in pts)
    single = sum(p["category"] not in MEMORY and p["batch"] == 1 for p in pts)
    line = (f"{len(pts)} points from {len(sources())} sources: {single} times and rates at batch/concurrency 1, "
            f"{len(pts) - single - memory} loaded")
    assert line in readme
    assert f"and {memory} of memory" in readme
    for heading, key in (("Per category", "category"), ("Per engine", "engine"), ("Per GPU", "hardware")):
        assert readme_table(readme, heading) == dict(collections.Counter(p[key] for p in pts)), heading
