"""The CLI on every junk kind: exit 1 with the gate's code and a message, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.junk import JUNK
from tests.integration.test_cli import SAMPLES, run_cli, summary


@pytest.mark.parametrize("kind", JUNK)
def test_each_junk_kind_fails_the_run_with_its_code_and_no_traceback(kind, output_dir, tmp_path):
    junk = JUNK[kind]
    path = tmp_path / junk.name
    path.write_bytes(junk.build())
    result = run_cli("run", str(path), "--brand", "mccormick-usa", "--run-id", "junk", output_dir=output_dir)
    assert result.returncode == 1, result.stderr
    error = summary(result)["error"]
    assert error["code"] == junk.code and error["stage"] == 1
    assert junk.name in error["message"] and ": " in error["message"]  # what was found, then how to fix it
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    run = json.loads((output_dir / "junk" / "run.json").read_text())
    assert run["status"] == "FAILED" and run["error"]["code"] == junk.code
    outputs = [p for p in (output_dir / "junk").rglob("*.json") if p.name != "run.json"]
    assert outputs == []  # refused before stage 1 wrote anything


def test_markdown_with_front_matter_runs_and_no_front_matter_reaches_the_report(output_dir):
    result = run_cli("run", str(SAMPLES / "pet-care-humanization.md"), "--brand", "lactalis-canada",
                     "--run-id", "fm", output_dir=output_dir)
    assert result.returncode == 0, result.stderr
    report = (output_dir / "fm" / "report.md").read_text()
    for leftover in ("layout:", "{%", "<!--", "**Fresh refrigerated"):
        assert leftover not in report
    assert "truncated" not in report.split("## 1.")[0]


def test_the_readme_first_command_writes_an_honest_offline_report(output_dir):
    result = run_cli("run", str(SAMPLES / "flavor-trends-2026.pdf"), "--brand", "mccormick-usa", "--run-id", "readme",
                     output_dir=output_dir)
    assert result.returncode == 0, result.stderr
    head = (output_dir / "readme" / "report.md").read_text().split("## 1.")[0]
    assert "- **Engine:** offline (no language model)" in head and "**Extractive draft.**" in head
    assert "- **Relevance:** high" in head and "truncated" not in head
    cards = json.loads((output_dir / "readme" / "stage5" / "opportunities.json").read_text())["opportunities"]
    titles = " ".join(c["title"] for c in cards).casefold()
    # The sample's obvious ideas reach the cards: at least two of its named products.
    assert sum(thing in titles for thing in ("chili crisp", "hot honey", "heat scale", "heat ladder")) >= 2, titles


def test_a_document_with_no_market_signal_completes_with_low_relevance_stated(output_dir, tmp_path: Path):
    text = "\n\n".join([
        "This paper describes a register allocator for an optimizing compiler that targets a stack machine.",
        "The allocator colours an interference graph built from live ranges computed by a backward pass.",
        "We spill the live range with the lowest cost when the graph cannot be coloured with the registers "
        "available, and we rebuild the graph after each spill.",
        "Coalescing removes copies between live ranges that do not interfere, which shortens the code.",
        "Our evaluation compiles twelve benchmark programs and counts the instructions executed by each.",
        "The allocator removes most spill code in loops, and the remaining spills occur in long basic blocks.",
        "We prove that the pass terminates because each spill strictly reduces the number of live ranges.",
        "Future work will study how the allocator interacts with instruction scheduling on pipelined machines.",
    ])
    path = tmp_path / "compiler-paper.txt"
    path.write_text(text)
    result = run_cli("run", str(path), "--brand", "decathlon", "--run-id", "offtopic", output_dir=output_dir)
    assert result.returncode == 0, result.stderr
    head = (output_dir / "offtopic" / "report.md").read_text().split("## 1.")[0]
    assert "- **Relevance:** low" in head and "**low relevance**" in head
