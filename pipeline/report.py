"""The final report: the five stage outputs rendered as markdown for a person, plus five cards.

Pure and deterministic (no clock): the same outputs always render the same bytes. Outputs are
read defensively, since an LLM engine may add keys or use numbers where the offline engine
writes labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from persistence.records import STAGE_NAMES, FinalReport, OpportunityCard
from pipeline.document import Document

if TYPE_CHECKING:
    from pipeline.brands import BrandProfile

TITLE = "# Innovation Intelligence Report"


def _inline(value: object) -> str:
    """One line of text: whitespace collapsed so a value cannot break the markdown structure."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return " ".join(str(value).split())


def _items(output: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    """The objects listed under ``key`` (non-objects are skipped)."""
    value = output.get(key)
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _quote(text: object) -> str:
    """A document quote as a markdown blockquote."""
    return "> " + _inline(text)


def _heading(number: int) -> str:
    """The section heading of one stage."""
    return f"## {number}. {STAGE_NAMES[number].capitalize()}"


def _stage1(out: Mapping[str, Any]) -> list[str]:
    """Summary, core mechanism and each inspiration with its quotes."""
    lines = [_inline(out.get("summary")), "", f"**Core mechanism:** {_inline(out.get('core_mechanism'))}"]
    for i, insp in enumerate(_items(out, "inspirations"), start=1):
        lines += ["", f"### Inspiration {i}: {_inline(insp.get('title'))}", "",
                  f"*Mechanism: {_inline(insp.get('mechanism_type')).replace('_', ' ').lower()}*", "",
                  _inline(insp.get("description")), "", "Evidence from the document:", ""]
        for quote in insp.get("evidence") or []:
            lines += [_quote(quote), ""]
        lines.pop()
    return lines


def _stage2(out: Mapping[str, Any]) -> list[str]:
    """One bullet per signal with its category and relevance."""
    lines = []
    for signal in _items(out, "signals"):
        lines.append(f"- **{_inline(signal.get('id'))} · {_inline(signal.get('category'))}** — "
                     f"{_inline(signal.get('description'))} *(relevance: {_inline(signal.get('relevance'))})*")
    return lines


def _insights(out: Mapping[str, Any], fit_key: str, fit_label: str, ref_key: str, ref_label: str) -> list[str]:
    """Insights as sub-sections with a fit line and the ids they build on (stages 3 and 4)."""
    lines: list[str] = []
    for insight in _items(out, "insights"):
        refs = ", ".join(_inline(r) for r in insight.get(ref_key) or [])
        lines += [f"### {_inline(insight.get('id'))} · {_inline(insight.get('title'))}", "",
                  _inline(insight.get("description")), "",
                  f"- {fit_label}: {_inline(insight.get(fit_key))}",
                  f"- {ref_label}: {refs or 'none'}", ""]
    return lines[:-1]


def _card_markdown(card: Mapping[str, Any]) -> str:
    """One opportunity card in full: title, type, description, next steps, follow-up prompts."""
    lines = [f"### Opportunity {_inline(card.get('number'))} — {_inline(card.get('innovation_type'))}: "
             f"{_inline(card.get('title'))}", "", _inline(card.get("description")), "", "**Next steps**", ""]
    lines += [f"{i}. {_inline(step)}" for i, step in enumerate(card.get("actionability") or [], start=1)]
    lines += ["", "**Follow-up prompts**", ""]
    lines += [f"- {_inline(prompt)}" for prompt in card.get("follow_up_prompts") or []]
    return "\n".join(lines)


def _stage5(out: Mapping[str, Any]) -> list[str]:
    """An overview table of the five opportunities (the cards follow in full)."""
    lines = ["| # | Type | Opportunity |", "|---|---|---|"]
    for card in _items(out, "opportunities"):
        title = _inline(card.get("title")).replace("|", "\\|")
        lines.append(f"| {_inline(card.get('number'))} | {_inline(card.get('innovation_type'))} | {title} |")
    return lines


def _written_by(engine: str, model: str | None) -> list[str]:
    """Who wrote the report, first, so no reader mistakes a rule-built draft for a model's analysis."""
    if engine == "offline":
        return ["- **Engine:** offline (no language model)",
                "", "> **Extractive draft.** Every quote below is a sentence of the document; the signals, "
                    "insights and cards are assembled from those sentences and the brand profile by fixed rules, "
                    "not written by a language model. Check the cards before acting on them; set "
                    "`OPENROUTER_API_KEY` for the LLM engine.", ""]
    return [f"- **Engine:** {_inline(engine)}, model `{_inline(model)}`" if model
            else f"- **Engine:** {_inline(engine)} (model not recorded)"]


def _relevance(document: Document) -> list[str]:
    """The document's market relevance as the input gate measured it; a warning when it is low."""
    relevance = document.relevance
    if relevance is None:
        return []
    line = f"- **Relevance:** {relevance.describe()}"
    if relevance.level == "low":
        line += (" — **low relevance**: the document says little about markets, consumers or products, "
                 "so the opportunities below stretch it beyond what it covers")
    return [line]


def _header(run_id: str, brand: BrandProfile, document: Document, engine: str, model: str | None) -> list[str]:
    """Engine and model first, then brand, document and run id, so a reader knows what they are looking at."""
    language = "" if document.language == "en" else f", language `{document.language}`"
    lines = [TITLE, "", *_written_by(engine, model),
             f"- **Brand:** {brand.brand_name} (`{brand.brand_id}`) — {brand.industry}, {brand.country}",
             f"- **Document:** {_inline(document.name)} ({document.words:,} words{language})",
             *_relevance(document),
             f"- **Run:** `{run_id}`"]
    if document.truncated:  # only when text was really cut: a short file never gets this note
        lines += ["", f"> **Note:** the document was truncated: the stages read the first "
                      f"{len(document.text):,} of its {document.original_chars:,} characters."]
    return lines


def render_report(*, run_id: str, brand: BrandProfile, document: Document,
                  outputs: Mapping[int, Mapping[str, Any]], engine: str, model: str | None) -> FinalReport:
    """The report markdown (contract §7) and its five opportunity cards.

    ``engine`` and ``model`` name what wrote the stage outputs (``model`` None for the offline
    engine); the report's first lines say so.
    """
    renderers = {
        1: _stage1, 2: _stage2,
        3: lambda out: _insights(out, "transferability", "Transferability", "signal_ids", "Built on signals"),
        4: lambda out: _insights(out, "brand_fit", "Brand fit", "insight_ids", "From insights"),
        5: _stage5,
    }
    lines = _header(run_id, brand, document, engine, model)
    for number, render in renderers.items():
        output = outputs.get(number)
        body = render(output) if isinstance(output, Mapping) else ["*No output was recorded for this stage.*"]
        lines += ["", _heading(number), "", *body]
    stage5 = outputs.get(5)
    cards = [card for card in _items(stage5, "opportunities")] if isinstance(stage5, Mapping) else []
    contents = [_card_markdown(card) for card in cards]
    if contents:
        lines += ["", "## Opportunity cards"]
        for content in contents:
            lines += ["", content]
    markdown = "\n".join(lines) + "\n"
    return FinalReport(
        markdown=markdown,
        cards=tuple(OpportunityCard(number=_card_number(card, i), title=_inline(card.get("title")), content=content)
                    for i, (card, content) in enumerate(zip(cards, contents, strict=True), start=1)),
    )


def _card_number(card: Mapping[str, Any], position: int) -> int:
    """The card's number, or its position when the number is not an integer."""
    number = card.get("number")
    return number if isinstance(number, int) and not isinstance(number, bool) else position
