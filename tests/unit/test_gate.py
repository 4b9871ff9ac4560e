"""The input gate: each cleaning step and each rule, with a document that trips it and a real report that does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.junk import JUNK
from config.errors import InvalidInput
from pipeline.document import Document
from pipeline.documents import RawDocument, parse_document
from pipeline.gate import admit
from pipeline.gate.clean import clean, is_drawing
from pipeline.gate.measure import measure

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
REPORT = (SAMPLES / "outdoor-gear-circularity.txt").read_text(encoding="utf-8")
PROSE = ("Refill stations for household cleaning products grew 35% in 2025 as shoppers tried to cut plastic "
         "waste. A regional grocer placed refill stations next to the checkout and sold 40% more detergent. ")


def doc(text: str, name: str = "doc.md") -> Document:
    return Document(name=name, source="test", media_type="text/markdown", text=text, original_chars=len(text))


def refused(text: str, name: str = "doc.md") -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        admit(doc(text, name))
    return caught.value


# --- cleaning -------------------------------------------------------------------------------

def test_front_matter_and_template_tags_are_stripped_and_the_report_kept():
    text = "---\nlayout: post\ntitle: \"Trends\"\n---\n{% include header.html %}\n\n" + REPORT
    cleaned = clean(text)
    assert not cleaned.text.startswith("---") and "layout:" not in cleaned.text and "{%" not in cleaned.text
    assert "front matter" in cleaned.removed and "1 template tags" in cleaned.removed
    assert cleaned.text.split()[:5] == clean(REPORT).text.split()[:5]


def test_markdown_syntax_goes_and_its_words_stay():
    cleaned = clean("# Heading\n\nSee the [refill study](https://x.test/a) and **bold claims** with `code`.\n\n"
                    "| Product | Growth |\n|---|---|\n| Refill pouches | 35% |\n<!-- note -->")
    assert "Heading" in cleaned.text and "refill study" in cleaned.text and "https" not in cleaned.text
    assert "**" not in cleaned.text and "`" not in cleaned.text and "<!--" not in cleaned.text
    assert "Refill pouches; 35%" in cleaned.text and "|" not in cleaned.text


def test_page_furniture_repeated_on_every_page_is_stripped():
    pages = [f"Trend Watch 2026 | Confidential\n\n{PROSE * 3}\n\nPage {n} of 4" for n in range(1, 5)]
    cleaned = clean("\n\n".join(pages))
    assert "Confidential" not in cleaned.text and "Page 2 of 4" not in cleaned.text
    assert cleaned.text.count("Refill stations") == 12


def test_a_heading_used_twice_is_not_furniture():
    text = "Key findings\n\n" + PROSE + "\n\nKey findings\n\n" + PROSE
    assert clean(text).text.count("Key findings") == 2


@pytest.mark.parametrize(("line", "drawing"), [
    ("0.2 0.4 0.6 rg", True), ("BT /F1 12 Tf 72 700 Td (Trend) Tj ET", True), ("q 1 0 0 1 72 720 cm", True),
    ("Sales rose 35% in 2025.", False), ("Q3 revenue", False), ("f", False),
])
def test_drawing_operators_are_told_from_prose(line, drawing):
    assert is_drawing(line) is drawing


# --- rules: each with a document that trips it ----------------------------------------------

RULES = {
    "placeholder": ("DOCUMENT_PLACEHOLDER", "lorem ipsum"),
    "code-listing": ("DOCUMENT_NOT_PROSE", "source code"),
    "number-table": ("DOCUMENT_NOT_PROSE", "mostly numbers"),
    "symbol-soup": ("DOCUMENT_NOT_PROSE", "mostly symbols"),
    "repeated-line": ("DOCUMENT_NOT_PROSE", "repeats one line"),
    "image-pdf-one-word": ("DOCUMENT_TOO_SHORT", "holds only 1 word"),
    "drawing-operators-pdf": ("DOCUMENT_NOT_PROSE", "PDF drawing instructions"),
    "masthead-pdf": ("DOCUMENT_TOO_SHORT", "masthead"),
}


@pytest.mark.parametrize("kind", RULES)
def test_each_junk_kind_trips_its_rule_with_a_message_saying_what_and_how_to_fix(kind):
    code, found = RULES[kind]
    junk = JUNK[kind]
    with pytest.raises(InvalidInput) as caught:
        parse_document(RawDocument(junk.name, junk.name, junk.build()))
    assert caught.value.code == code == junk.code
    assert found in caught.value.message and "upload" in caught.value.message


def test_the_same_sentences_over_and_over_are_not_prose():
    error = refused(" ".join([PROSE] * 40))
    assert error.code == "DOCUMENT_NOT_PROSE" and "repeats the same sentences" in error.message


def test_a_few_sentences_are_too_short():
    error = refused(PROSE + " ".join(["Shoppers like refills and the stores that sell them."] * 1) + " word" * 40)
    assert error.code in ("DOCUMENT_TOO_SHORT", "DOCUMENT_NOT_PROSE")
    assert refused(PROSE).code == "DOCUMENT_TOO_SHORT"


@pytest.mark.parametrize("path", sorted(p for p in SAMPLES.iterdir() if p.suffix in (".md", ".txt", ".pdf")),
                         ids=lambda p: p.name)
def test_every_real_report_passes_every_rule(path):
    document = parse_document(RawDocument(path.name, str(path), path.read_bytes()))
    assert document.language == "en" and document.relevance is not None
    assert document.relevance.level == "high"
    assert measure(document.text).prose_sentences >= 20


COMPILER_PAPER = [
    "This paper describes a register allocator for an optimizing compiler that targets a stack machine.",
    "The allocator colours an interference graph built from live ranges computed by a backward pass.",
    "We spill the live range with the lowest cost when the graph cannot be coloured with the registers "
    "available, and we rebuild the graph after each spill.",
    "Coalescing removes copies between live ranges that do not interfere, which shortens the code.",
    "Our evaluation compiles twelve benchmark programs and counts the instructions executed by each.",
    "The allocator removes most spill code in loops, and the remaining spills occur in long basic blocks.",
    "We prove that the pass terminates because each spill strictly reduces the number of live ranges.",
    "Future work will study how the allocator interacts with instruction scheduling on pipelined machines.",
]


# --- language and relevance -------------------------------------------------------------------

FRENCH = (
    "Les fromageries québécoises vendent désormais des portions individuelles dans les supermarchés. "
    "Les ventes de ces portions ont augmenté de 18 % en 2025, selon les distributeurs de la province. "
    "Les parents les achètent pour les boîtes à lunch, et les jeunes adultes pour les collations. "
    "Une coopérative laitière a lancé un abonnement de livraison hebdomadaire de lait et de beurre. "
    "Plus de la moitié des abonnés ont renouvelé leur abonnement après six mois, ce qui est rare. "
    "Les épiciers installent des stations de remplissage pour le yogourt et le lait en vrac. "
    "Les consommateurs disent que le prix reste le premier critère, mais que la provenance compte aussi. "
    "Les fromages vieillis de la région se vendent plus cher quand le nom de la ferme est sur l'étiquette. "
    "Les marques qui racontent l'histoire de leurs producteurs gagnent la confiance des jeunes familles. "
    "Le marché des collations protéinées a progressé de 12 % et attire surtout les sportifs du week-end.")


def test_a_french_report_is_admitted_and_labelled_french():
    document = admit(doc(FRENCH))
    assert document.language == "fr" and document.relevance is not None
    assert document.relevance.level == "unknown"


def test_a_report_in_another_script_is_labelled_by_script():
    text = ("日本の消費者は小分けパックを好む。売上は前年比で二割増えた。コンビニでの販売が伸びている。"
            "若い世代は健康志向の商品を選ぶ傾向がある。定期購入のサービスも広がっている。"
            "地方の生産者と組んだ限定商品が人気を集めた。包装の簡素化に取り組む企業も増えている。"
            "冷凍食品の品質が向上し、平日の夕食に使う家庭が増えた。店頭での試食は購入率を大きく高めた。"
            "高価格帯の調味料は贈り物としても選ばれている。海外の料理を家庭で作る人が三年で倍になった。"
            "スマートフォンのアプリでレシピを探し、そのまま食材を注文する人も多い。")
    assert admit(doc(text)).language == "zh/ja"


def test_a_document_without_market_signal_is_admitted_with_low_relevance():
    text = "\n\n".join(COMPILER_PAPER)
    document = admit(doc(text))
    assert document.relevance is not None and document.relevance.level == "low"
    assert document.relevance.describe().startswith("low: 0 of ")
