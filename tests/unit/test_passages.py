"""Numbered passages: deterministic, whole sentences, nothing lost but fragments, sections that fit."""

from __future__ import annotations

from pipeline.passages import MAX_PASSAGE_CHARS, MIN_PASSAGE_CHARS, render, rendered_chars, sections, split_passages
from pipeline.passages import texts as passage_texts

TEXT = "\n\n".join([
    "# A heading that is long enough to be a passage",
    "12",  # a page number: too short to be evidence
    "Refill stations grew 35% in a year. Shoppers bring their own jars.",
    " ".join(f"Sentence {n} of a very long paragraph that keeps going with figures like {n}%." for n in range(40)),
])


def test_ids_run_from_1_in_reading_order_and_the_split_is_deterministic():
    passages = split_passages(TEXT)
    assert [p.id for p in passages] == list(range(1, len(passages) + 1))
    assert split_passages(TEXT) == passages
    assert passages[1].text == "Refill stations grew 35% in a year. Shoppers bring their own jars."


def test_long_paragraphs_are_split_at_sentence_ends_and_short_fragments_dropped():
    passages = split_passages(TEXT)
    assert all(MIN_PASSAGE_CHARS <= len(p.text) <= 2 * MAX_PASSAGE_CHARS for p in passages)
    assert all(p.text.endswith(".") for p in passages[2:])
    assert "12" not in [p.text for p in passages]
    assert " ".join(p.text for p in passages[2:]) == " ".join(TEXT.split("\n\n")[3].split())


def test_sections_fit_the_budget_and_keep_every_passage_once():
    passages = split_passages(TEXT)
    parts = sections(passages, 800)
    assert len(parts) > 1 and [p for part in parts for p in part] == passages
    assert all(rendered_chars(part) <= 800 for part in parts if len(part) > 1)
    assert render(passages[:1]) == f"[P1] {passages[0].text}"


def test_texts_by_id_skip_unknown_and_repeated_ids():
    passages = split_passages(TEXT)
    assert passage_texts(passages, [2, 2, 999, 1]) == [passages[1].text, passages[0].text]
