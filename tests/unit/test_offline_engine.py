"""The offline engine: concrete, document- and brand-driven, deterministic and robust."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.errors import StageError
from pipeline.brands import BrandProfile, load_brand
from pipeline.document import Document
from pipeline.offline import OfflineEngine
from pipeline.offline.text import content_keys, normalise
from pipeline.stage_schema import INNOVATION_TYPES, validate_stage_output

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "data" / "samples"
BRANDS = ROOT / "data" / "brand-profiles"

TREND_TEXT = """# Refill, subscription and single-serve: the 2025 household trends

Refill stations for household cleaning products grew 35% in 2025 as shoppers tried to cut plastic waste.
A regional grocer placed refill stations next to the checkout and sold 40% more detergent by volume.
Subscription coffee deliveries removed the friction of running out: 70% of subscribers renewed after a year.
A roaster that moved customers to a two-week subscription doubled order frequency.
Single-serve sachets of premium spice blends let home cooks buy one recipe's worth instead of a full jar.
Sales of single-serve sachets rose 22% while full jars were flat.
Shoppers said refill stations made them feel less guilty about plastic waste.
"""
OTHER_TEXT = """Outdoor brands are renting tents and bikes to beginners instead of selling them.
A sporting goods chain saw 63% of rental customers buy gear from the category for the first time.
Repair workshops in stores cut turnaround from six weeks to nine days once booking moved online.
Resale of used jackets now brings 31% of buyers who had never bought the brand new.
"""


def make_brand(brand_id: str = "acme-foods", **changes: Any) -> BrandProfile:
    base = BrandProfile(
        brand_id=brand_id, brand_name="Acme Foods", country="Canada", industry="Packaged food",
        positioning="A Canadian packaged food maker known for pantry staples, sauces and snacks.",
        product_portfolio=("pantry sauces and cooking pastes", "spice blends and seasonings", "snack bars"),
        target_customers=("busy parents cooking weeknight dinners", "students on a budget"),
        recent_innovations=("reduced-sodium sauce range", "recyclable pouch packaging", "online recipe hub"),
        strategic_priorities=("reduce plastic packaging", "grow convenient meal solutions",
                              "expand premium spice blends"),
        brand_values=("honest ingredients", "value for families", "sustainability"),
    )
    return replace(base, **changes)


OUTDOOR_BRAND = make_brand(
    "trail-co", brand_name="Trail Co", country="France", industry="Outdoor equipment",
    product_portfolio=("hiking boots", "rain jackets and shells", "camping tents"),
    target_customers=("weekend hikers", "families new to camping"),
    recent_innovations=("boot resoling service", "tent rental pilot", "recycled shell fabric"),
    strategic_priorities=("grow rental and resale", "premium technical shells", "make camping easy for beginners"),
    brand_values=("durability", "access to nature", "repairability"),
)


def doc(text: str, name: str = "household-trends.md", **kw) -> Document:
    return Document(name=name, source="test", media_type="text/markdown", text=text,
                    original_chars=kw.pop("original_chars", len(text)), **kw)


def run_all(document: Document, brand: BrandProfile) -> dict[int, dict]:
    engine = OfflineEngine()
    s1 = engine.input_processing(document)
    s2 = engine.signal_amplification(document, s1)
    s3 = engine.general_translation(s1, s2)
    s4 = engine.brand_contextualization(s3, brand)
    s5 = engine.opportunity_generation(s4, brand, document)
    return {1: s1, 2: s2, 3: s3, 4: s4, 5: s5}


def assert_valid(outputs: dict[int, dict]) -> None:
    for stage, output in outputs.items():
        validate_stage_output(stage, output, outputs.get(stage - 1))
    json.dumps(outputs)  # everything is plain JSON


def quotes(outputs: dict[int, dict]) -> list[str]:
    """Every verbatim quote the engine attributes to the document."""
    found = [q for insp in outputs[1]["inspirations"] for q in insp["evidence"]]
    found += [q for s in outputs[2]["signals"] for q in s["evidence"]]
    found += [q for card in outputs[5]["opportunities"] for q in card["evidence"]]
    return found


@pytest.fixture(scope="module")
def trend() -> dict[int, dict]:
    return run_all(doc(TREND_TEXT), make_brand())


def test_engine_is_named_offline():
    assert OfflineEngine.name == "offline"


def test_stage1_summarises_the_document_with_its_own_facts(trend):
    summary = trend[1]["summary"]
    assert summary.startswith("“household-trends.md” (")
    assert "Refill stations for household cleaning products grew 35% in 2025" in summary


def test_stage1_names_each_inspiration_after_the_thing_its_claim_describes(trend):
    inspirations = trend[1]["inspirations"]
    assert len(inspirations) == 3
    for insp in inspirations:
        thing = insp["title"].split(":")[0].casefold()
        assert thing and thing in normalise(insp["evidence"][0]).casefold()
    assert any(i["title"].startswith("Single-serve sachets") for i in inspirations)


def test_stage1_keeps_the_cue_that_chose_each_mechanism(trend):
    sentences = [" ".join(line.split()) for line in TREND_TEXT.splitlines() if line.strip()]
    for insp in trend[1]["inspirations"]:
        cue = insp["cue"]
        if cue.startswith("no cue"):
            assert insp["mechanism_type"] == "REFRAMED"
            continue
        words = re.findall(r"“([^”]+)”", cue)
        claim = sentences.index(insp["evidence"][0])
        nearby = " ".join(sentences[max(claim - 1, 0):claim + 1]).casefold()
        assert words and all(w.casefold() in nearby for w in words), (cue, insp["evidence"][0])
    cues = " ".join(i["cue"] for i in trend[1]["inspirations"]).casefold()
    assert "single-serve" in cues or "refill" in cues


def test_evidence_is_never_quoted_twice_across_inspirations(trend):
    evidence = [q for i in trend[1]["inspirations"] for q in i["evidence"]]
    assert len(evidence) == len(set(evidence))


def test_stage2_signals_are_other_claims_filed_under_an_inspiration(trend):
    titles = {i["title"] for i in trend[1]["inspirations"]}
    claims = {i["evidence"][0] for i in trend[1]["inspirations"]}
    signals = trend[2]["signals"]
    assert [s["id"] for s in signals] == [f"S{n}" for n in range(1, len(signals) + 1)]
    assert {s["inspiration"] for s in signals} == titles  # every inspiration is amplified
    for signal in signals:
        assert signal["evidence"] and signal["evidence"][0] not in claims
        assert signal["relevance"].split(":")[0] in ("high", "medium", "low")


def test_stage3_groups_every_signal_under_one_insight(trend):
    insights = trend[3]["insights"]
    cited = [sid for i in insights for sid in i["signal_ids"]]
    assert sorted(cited) == sorted(s["id"] for s in trend[2]["signals"])
    assert len(insights) <= len(trend[1]["inspirations"])
    for insight in insights:
        assert insight["transferability"].split(":")[0] in ("high", "medium", "low")


def test_stage4_fit_can_be_low_when_the_brand_does_not_match(trend):
    fits = [i["brand_fit"] for i in OfflineEngine().brand_contextualization(trend[3], OUTDOOR_BRAND)["insights"]]
    assert all(f.split(" ")[0] in ("strong", "moderate", "low") for f in fits)
    assert any(f.startswith("low") for f in fits)
    assert trend[4]["brand_id"] == "acme-foods"


def test_stage5_builds_each_card_from_one_claim_and_one_product_line(trend):
    brand = make_brand()
    cards = trend[5]["opportunities"]
    assert [c["innovation_type"] for c in cards] == list(INNOVATION_TYPES)
    assert [c["number"] for c in cards] == [1, 2, 3, 4, 5]
    for card in cards:
        assert card["product_line"] in brand.product_portfolio
        assert set(content_keys(card["title"])) & set(content_keys(card["evidence"][0])), card["title"]
        assert card["evidence"][0] in normalise(TREND_TEXT)
        assert card["channel"] and card["price_point"] and card["why_now"]
        assert len(card["actionability"]) == 3 and len(card["follow_up_prompts"]) == 2
        assert not any("eight-week pilot" in step for step in card["actionability"])
    assert len({c["evidence"][0] for c in cards}) == 5  # five different claims of this document
    steps = [step for c in cards for step in c["actionability"]]
    assert len(set(steps)) == len(steps)  # next steps follow each card's claim, not a fixed list


ALLOWED_KEYS = {
    1: ({"summary", "core_mechanism", "inspirations"}, "inspirations",
        {"title", "description", "mechanism_type", "evidence", "cue", "passage_ids"}),
    2: ({"signals"}, "signals", {"id", "category", "description", "relevance", "inspiration", "evidence",
                                 "passage_ids"}),
    3: ({"insights"}, "insights", {"id", "title", "description", "transferability", "signal_ids"}),
    4: ({"brand_id", "insights"}, "insights", {"id", "title", "description", "brand_fit", "insight_ids"}),
    5: ({"opportunities"}, "opportunities",
        {"number", "title", "innovation_type", "description", "actionability", "follow_up_prompts", "evidence",
         "passage_ids", "product_line", "channel", "price_point", "why_now"}),
}


@pytest.mark.parametrize("stage", ALLOWED_KEYS)
def test_outputs_hold_only_contract_keys_and_the_agreed_optional_ones(trend, stage):
    top, items, allowed = ALLOWED_KEYS[stage]
    assert set(trend[stage]) == top
    for item in trend[stage][items]:
        assert set(item) <= allowed, set(item) - allowed


def test_a_non_english_document_is_refused_by_the_offline_engine():
    with pytest.raises(StageError) as caught:
        OfflineEngine().input_processing(doc(TREND_TEXT, language="fr"))
    assert caught.value.code == "DOCUMENT_LANGUAGE_UNSUPPORTED" and "OPENROUTER_API_KEY" in caught.value.message


def test_all_stage_outputs_satisfy_the_contract(trend):
    assert_valid(trend)


def sample_documents() -> list[Document]:
    found = []
    for path in sorted(SAMPLES.glob("*")):
        if path.suffix in (".md", ".txt"):
            found.append(doc(path.read_text(encoding="utf-8"), name=path.name))
        elif path.suffix == ".pdf":
            from pipeline.pdf_text import extract_pdf_text

            found.append(doc(extract_pdf_text(path.read_bytes()).text, name=path.name))
    return found


@pytest.mark.parametrize("document", [doc(TREND_TEXT), doc(OTHER_TEXT, "outdoor.txt"), *sample_documents()],
                         ids=lambda d: d.name)
def test_every_quote_is_a_verbatim_sentence_of_the_document(document):
    outputs = run_all(document, make_brand())
    text = normalise(document.text)
    assert_valid(outputs)
    for quote in quotes(outputs):
        assert quote in text, quote


def test_another_document_changes_stage1():
    first = OfflineEngine().input_processing(doc(TREND_TEXT))
    second = OfflineEngine().input_processing(doc(OTHER_TEXT, "outdoor.txt"))
    assert first["summary"] != second["summary"]
    assert {i["title"] for i in first["inspirations"]}.isdisjoint(i["title"] for i in second["inspirations"])
    assert "rent" in json.dumps(second["inspirations"]).lower()


@pytest.mark.parametrize("brands", [(make_brand(), OUTDOOR_BRAND),
                                    *([(load_brand(BRANDS, "mccormick-usa"), load_brand(BRANDS, "decathlon"))]
                                      if (BRANDS / "decathlon.yaml").exists() else [])],
                         ids=lambda pair: f"{pair[0].brand_id}-vs-{pair[1].brand_id}")
def test_another_brand_changes_stages_4_and_5(trend, brands):
    engine, document = OfflineEngine(), doc(TREND_TEXT)
    results = []
    for brand in brands:
        s4 = engine.brand_contextualization(trend[3], brand)
        s5 = engine.opportunity_generation(s4, brand, document)
        validate_stage_output(4, s4, trend[3])
        validate_stage_output(5, s5)
        assert s4["brand_id"] == brand.brand_id
        assert all(card["product_line"] in brand.product_portfolio for card in s5["opportunities"])
        assert all(brand.brand_name in " ".join(card["follow_up_prompts"]) for card in s5["opportunities"])
        results.append((s4, s5))
    assert results[0][0] != results[1][0]
    assert [c["title"] for c in results[0][1]["opportunities"]] != [c["title"] for c in results[1][1]["opportunities"]]


DETERMINISM_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
from pipeline.document import Document
from pipeline.offline import OfflineEngine
from tests.unit.test_offline_engine import OTHER_TEXT, OUTDOOR_BRAND, TREND_TEXT, make_brand, run_all
runs = [(TREND_TEXT, make_brand()), (OTHER_TEXT, OUTDOOR_BRAND)]
outputs = [run_all(Document("doc.md", "test", "text/markdown", text, len(text)), brand) for text, brand in runs]
sys.stdout.write(json.dumps(outputs, ensure_ascii=False))
"""


def test_output_is_byte_identical_across_processes_with_different_hash_seeds():
    outputs = []
    for seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run([sys.executable, "-c", DETERMINISM_SCRIPT, str(ROOT)], env=env, cwd=ROOT,
                              capture_output=True, check=True, timeout=120)
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1]
    assert len(outputs[0]) > 1000


def test_output_is_identical_on_repeated_calls_in_one_process(trend):
    assert run_all(doc(TREND_TEXT), make_brand()) == trend


ODD_DOCUMENTS = {
    "a few sentences": "Refill stations are spreading. Shoppers bring jars. Sales grew 12% in 2024.",
    "one fragment": "refill stations everywhere",
    "no sentence punctuation": " ".join(TREND_TEXT.replace(".", " ").replace(":", " ").split()) * 30,
    "non-ASCII": ("Les fromageries québécoises vendent désormais des portions individuelles. Les ventes ont "
                  "augmenté de 18 % en 2025. 日本の消費者は小分けパックを好む。売上は前年比で二割増えた。"),
    "unspaced script": "日本の消費者は小分けパックを好む。" * 300,
    "markdown only lists": "- refill pouches\n- subscription boxes\n- single-serve sachets\n",
}


@pytest.mark.parametrize("text", ODD_DOCUMENTS.values(), ids=ODD_DOCUMENTS.keys())
def test_odd_documents_still_yield_valid_outputs(text):
    document = doc(text, "odd.txt")
    outputs = run_all(document, make_brand())
    assert_valid(outputs)
    for quote in quotes(outputs):
        assert quote in normalise(text)


@pytest.mark.parametrize("text", ["", "   \n\t ", "... --- !!!"], ids=["empty", "whitespace", "punctuation"])
def test_a_document_without_words_is_a_stage_error(text):
    with pytest.raises(StageError) as caught:
        OfflineEngine().input_processing(doc(text, "blank.txt"))
    assert caught.value.code == "DOCUMENT_EMPTY" and caught.value.stage == 1


def test_a_two_megabyte_document_is_analysed_quickly_and_says_so():
    text = (OTHER_TEXT + "\n" + TREND_TEXT + "\n") * (2_000_000 // (len(OTHER_TEXT) + len(TREND_TEXT)) + 1)
    document = doc(text, "huge.txt")
    outputs = run_all(document, make_brand())  # speed is measured in bench/, not asserted here
    assert_valid(outputs)
    assert "Only its first 300,000 characters were analysed." in outputs[1]["summary"]


def test_a_truncated_document_is_flagged_in_the_summary():
    document = doc(TREND_TEXT, truncated=True, original_chars=len(TREND_TEXT) * 10)
    assert f"of {len(TREND_TEXT) * 10:,} characters" in OfflineEngine().input_processing(document)["summary"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(min_size=1, max_size=600))
def test_any_text_yields_valid_outputs_or_a_document_empty_error(text):
    document = doc(text, "fuzz.txt")
    try:
        outputs = run_all(document, make_brand())
    except StageError as exc:
        assert exc.code == "DOCUMENT_EMPTY"
        assert not any(ch.isalnum() for ch in text)
        return
    assert_valid(outputs)
    for quote in quotes(outputs):
        assert quote in normalise(text)


def test_a_short_document_is_never_said_to_be_cut_or_partly_read():
    summary = OfflineEngine().input_processing(doc("---\nlayout: post\n---\n" + TREND_TEXT))["summary"]
    assert "cut to" not in summary and "were analysed" not in summary
