"""The quality harness's checks fail when what they measure is wrong (they are not always green)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bench import quality
from pipeline.brands import load_brand
from tests.unit.test_offline_engine import BRANDS, OTHER_TEXT, TREND_TEXT, doc, run_all


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, dict[int, Any]]]:
    brands = [load_brand(BRANDS, b) for b in ("mccormick-usa", "decathlon")]
    return {name: {b.brand_id: run_all(doc(text, name), b) for b in brands}
            for name, text in (("trend.md", TREND_TEXT), ("outdoor.md", OTHER_TEXT * 2))}


def test_every_check_passes_on_real_outputs(results):
    for check in (quality.document_dependence, quality.evidence_support, quality.brand_dependence,
                  quality.clean_evidence):
        assert check(results).passed, check(results)


def test_shared_titles_between_documents_fail_document_dependence(results):
    bad = copy.deepcopy(results)
    for brand, outputs in bad["outdoor.md"].items():
        for mine, theirs in zip(outputs[5]["opportunities"], bad["trend.md"][brand][5]["opportunities"], strict=True):
            mine["title"] = theirs["title"]
    check = quality.document_dependence(bad)
    assert not check.passed and check.value == 5


def test_titles_unrelated_to_their_evidence_fail_evidence_support(results):
    bad = copy.deepcopy(results)
    for per in bad.values():
        for outputs in per.values():
            for card in outputs[5]["opportunities"]:
                card["title"] = "Zebra quantum origami"
    assert not quality.evidence_support(bad).passed


def test_identical_cards_for_two_brands_fail_brand_dependence(results):
    bad = copy.deepcopy(results)
    bad["trend.md"]["decathlon"][5] = bad["trend.md"]["mccormick-usa"][5]
    assert not quality.brand_dependence(bad).passed


@pytest.mark.parametrize("quote", ["layout: \"post\"", "**Bold claim** here", "{% include x %}",
                                   "Trend Watch 2026 | CONFIDENTIAL DRAFT", "Sales Page 3 of 9 grew"])
def test_markup_or_furniture_in_evidence_fails_clean_evidence(results, quote):
    bad = copy.deepcopy(results)
    bad["trend.md"]["mccormick-usa"][1]["inspirations"][0]["evidence"].append(quote)
    assert not quality.clean_evidence(bad).passed
