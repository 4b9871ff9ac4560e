"""The final report reads as a document for a person, names its inputs and carries five cards."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest

from persistence.records import STAGE_NAMES, FinalReport
from pipeline.brands import BrandProfile
from pipeline.document import Document, Relevance
from pipeline.offline import OfflineEngine
from pipeline.report import render_report
from pipeline.stages import run_stage

BRAND = BrandProfile(
    brand_id="acme-foods", brand_name="Acme Foods", country="Canada", industry="Packaged food",
    positioning="A Canadian packaged food maker known for pantry staples, sauces and snacks.",
    product_portfolio=("pantry sauces", "spice blends", "snack bars"),
    target_customers=("busy parents", "students"),
    recent_innovations=("reduced-sodium sauces", "recyclable pouches", "recipe hub"),
    strategic_priorities=("reduce plastic packaging", "grow meal solutions", "premium spice blends"),
    brand_values=("honest ingredients", "value", "sustainability"),
)
TEXT = ("Refill stations for cleaning products grew 35% in 2025 as shoppers cut plastic waste. "
        "Subscription coffee deliveries removed the friction of running out. "
        "Single-serve sachets of spice blends rose 22% while full jars were flat. "
        "Shoppers said refill stations made them feel less guilty about plastic.")


BASE = Document(name="refills.txt", source="test", media_type="text/plain", text=TEXT, original_chars=len(TEXT))


def document(**changes: Any) -> Document:
    return replace(BASE, **changes)


def render(outputs: Mapping[int, Mapping[str, Any]], *, doc: Document | None = None, engine: str = "offline",
           model: str | None = None, run_id: str = "r") -> FinalReport:
    return render_report(run_id=run_id, brand=BRAND, document=doc or document(), outputs=outputs, engine=engine,
                         model=model)


@pytest.fixture(scope="module")
def outputs() -> dict[int, dict]:
    done: dict[int, dict] = {}
    for stage in range(1, 6):
        done[stage] = run_stage(stage, OfflineEngine(), document=document(), brand=BRAND, previous=done)
    return done


@pytest.fixture(scope="module")
def report(outputs) -> FinalReport:
    return render(outputs, run_id="run-42")


def test_report_starts_with_the_title_and_names_brand_document_and_run(report):
    head = report.markdown.split("## 1.")[0].splitlines()
    assert head[0] == "# Innovation Intelligence Report"
    top = "\n".join(head)
    assert "Acme Foods" in top and "refills.txt" in top and "run-42" in top


def test_report_has_one_section_per_stage_in_order(report):
    headings = [line for line in report.markdown.splitlines() if line.startswith("## ")]
    expected = [f"## {n}. {STAGE_NAMES[n].capitalize()}" for n in range(1, 6)] + ["## Opportunity cards"]
    assert headings == expected


def test_report_is_prose_not_json(report, outputs):
    assert '{"' not in report.markdown and "': '" not in report.markdown
    assert outputs[1]["summary"] in report.markdown
    for quote in outputs[1]["inspirations"][0]["evidence"]:
        assert f"> {quote}" in report.markdown.splitlines()
    for signal in outputs[2]["signals"]:
        assert f"- **{signal['id']} · {signal['category']}** — " in report.markdown


def test_report_carries_five_cards_matching_stage5(report, outputs):
    cards = outputs[5]["opportunities"]
    assert [c.number for c in report.cards] == [1, 2, 3, 4, 5]
    assert [c.title for c in report.cards] == [c["title"] for c in cards]
    for card, source in zip(report.cards, cards, strict=True):
        assert card.content.startswith(f"### Opportunity {source['number']} — {source['innovation_type']}: ")
        assert card.content in report.markdown
        for step in source["actionability"]:
            assert step in card.content
        for prompt in source["follow_up_prompts"]:
            assert f"- {prompt}" in card.content


def test_report_is_deterministic_and_carries_no_timestamp(outputs, report):
    again = render(copy.deepcopy(outputs), run_id="run-42")
    assert again == report
    assert not re.search(r"\d{4}-\d{2}-\d{2}T|\d{2}:\d{2}:\d{2}", report.markdown)


@pytest.mark.parametrize("truncated", [True, False])
def test_report_notes_a_truncated_document_only_when_it_was_cut(outputs, truncated):
    cut = document(truncated=truncated, original_chars=len(TEXT) * 3 if truncated else len(TEXT))
    markdown = render(outputs, doc=cut).markdown
    assert ("truncated" in markdown.split("## 1.")[0]) is truncated


def test_report_renders_llm_style_values_and_odd_whitespace(outputs):
    odd = copy.deepcopy(outputs)
    odd[2]["signals"][0]["relevance"] = 0.87
    odd[4]["insights"][0]["brand_fit"] = 0.5
    odd[1]["inspirations"][0]["evidence"][0] = "a quote\n\n## that tries to break out"
    markdown = render(odd).markdown
    assert "*(relevance: 0.87)*" in markdown
    assert "- Brand fit: 0.5" in markdown
    assert "> a quote ## that tries to break out" in markdown.splitlines()


def test_a_missing_stage_is_reported_as_missing_not_a_crash(outputs):
    partial = {n: outputs[n] for n in (1, 2, 3)}
    result = render(partial)
    assert result.markdown.count("*No output was recorded for this stage.*") == 2
    assert result.cards == ()


def test_the_first_lines_say_an_offline_report_is_an_extractive_draft_with_no_model(report):
    head = report.markdown.splitlines()[:6]
    assert head[0] == "# Innovation Intelligence Report"
    assert head[2] == "- **Engine:** offline (no language model)"
    assert "**Extractive draft.**" in head[4] and "not written by a language model" in head[4]


def test_the_first_lines_name_the_llm_engine_and_its_model(outputs):
    head = render(outputs, engine="openrouter", model="example/model-1").markdown.splitlines()[:4]
    assert head[2] == "- **Engine:** openrouter, model `example/model-1`"
    assert not any("Extractive draft" in line for line in head)


@pytest.mark.parametrize(("level", "warned"), [("low", True), ("high", False)])
def test_low_relevance_is_stated_in_the_header(outputs, level, warned):
    doc = document(relevance=Relevance(level, 2, 40))
    head = render(outputs, doc=doc).markdown.split("## 1.")[0]
    assert f"- **Relevance:** {level}: 2 of 40 sentences name a market, consumer or product" in head
    assert ("**low relevance**" in head) is warned
