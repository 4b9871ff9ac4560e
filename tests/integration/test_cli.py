"""``python -m pipeline`` as a real subprocess: samples × brands, determinism, layout, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from persistence.records import STAGE_FILES
from pipeline.stage_schema import validate_stage_output
from tests import pdf_fixtures
from tests.conftest import REPO

SAMPLES = REPO / "data" / "samples"
SAMPLE_FILES = ["convenience-reinvented.md", "outdoor-gear-circularity.txt", "flavor-trends-2026.pdf"]
BRANDS = ["mccormick-usa", "decathlon"]
LAYOUT = sorted(["run.json", "report.md", *STAGE_FILES.values()])


def run_cli(*args: str, output_dir: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the CLI in a clean environment (no DATABASE_URL: file mode) with OUTPUT_DIR set."""
    scrubbed = ("DATABASE_URL", "ENABLE_", "OPENROUTER", "PIPELINE_")
    base = {k: v for k, v in os.environ.items() if not k.startswith(scrubbed)}
    base.update({"OUTPUT_DIR": str(output_dir), "LOG_LEVEL": "INFO"}, **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=REPO, env=base, capture_output=True, text=True, timeout=300
    )


def summary(result: subprocess.CompletedProcess) -> dict:
    """The JSON summary: the last stdout line."""
    return json.loads(result.stdout.strip().splitlines()[-1])


def layout(run_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock")


@pytest.mark.parametrize("brand", BRANDS)
@pytest.mark.parametrize("sample", SAMPLE_FILES)
def test_every_sample_runs_for_each_brand_into_the_contract_layout(sample, brand, output_dir):
    result = run_cli("run", str(SAMPLES / sample), "--brand", brand, "--run-id", "r1", output_dir=output_dir)
    assert result.returncode == 0, result.stderr
    assert summary(result) == {
        "status": "COMPLETED", "run_id": "r1", "mode": "FILE_ONLY",
        "output_dir": str(output_dir / "r1"), "report": str(output_dir / "r1" / "report.md"), "error": None,
        "usage": None, "cache_hits": [],  # the offline engine makes no LLM call
    }
    run_dir = output_dir / "r1"
    assert layout(run_dir) == LAYOUT
    for stage, name in STAGE_FILES.items():
        validate_stage_output(stage, json.loads((run_dir / name).read_text()))
    report = (run_dir / "report.md").read_text()
    assert report.startswith("# Innovation Intelligence Report")
    brand_name = json.loads((run_dir / STAGE_FILES[4]).read_text())["brand_id"]
    assert brand_name == brand and sample in report and "r1" in report
    for n in range(1, 6):
        assert f"[{n}/5]" in result.stderr  # progress per stage
    run = json.loads((run_dir / "run.json").read_text())
    assert [t["status"] for t in run["transitions"]] == ["QUEUED", "PROCESSING", "COMPLETED"]
    assert sorted(run["stages"]) == ["1", "2", "3", "4", "5"]
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()[:-1]]
    assert lines and all(line["run_id"] == "r1" for line in lines
                         if line.get("logger", "").startswith("pipeline.runner"))


def test_the_same_input_gives_byte_identical_outputs(tmp_path):
    outputs = []
    for name in ("a", "b"):
        out = tmp_path / name
        out.mkdir()
        result = run_cli("run", str(SAMPLES / "flavor-trends-2026.pdf"), "--brand", "mccormick-usa",
                         "--run-id", "same", output_dir=out, env={"PYTHONHASHSEED": str(len(name) * 7 + ord(name))})
        assert result.returncode == 0, result.stderr
        outputs.append({f: (out / "same" / f).read_bytes() for f in [*STAGE_FILES.values(), "report.md"]})
    assert outputs[0] == outputs[1]


def test_another_brand_changes_stages_four_and_five_but_not_one_to_three(tmp_path):
    runs = {}
    for brand in BRANDS:
        out = tmp_path / brand
        out.mkdir()
        assert run_cli("run", str(SAMPLES / "convenience-reinvented.md"), "--brand", brand, "--run-id", "x",
                       output_dir=out).returncode == 0
        runs[brand] = {n: (out / "x" / f).read_bytes() for n, f in STAGE_FILES.items()}
    a, b = runs.values()
    assert [a[n] == b[n] for n in range(1, 6)] == [True, True, True, False, False]


def test_a_generated_run_id_is_used_when_none_is_given(output_dir):
    result = run_cli("run", str(SAMPLES / "convenience-reinvented.md"), "--brand", "decathlon", output_dir=output_dir)
    assert result.returncode == 0, result.stderr
    run_id = summary(result)["run_id"]
    assert run_id.startswith("run-") and (output_dir / run_id / "report.md").exists()


def test_rerunning_a_completed_run_id_does_nothing_and_says_so(output_dir):
    args = ("run", str(SAMPLES / "convenience-reinvented.md"), "--brand", "decathlon", "--run-id", "again")
    assert run_cli(*args, output_dir=output_dir).returncode == 0
    before = (output_dir / "again" / "run.json").read_bytes()
    result = run_cli(*args, output_dir=output_dir)
    assert result.returncode == 0 and "already completed" in result.stderr
    assert (output_dir / "again" / "run.json").read_bytes() == before


def test_an_interrupted_run_resumes_from_its_last_finished_stage(output_dir):
    from persistence.files import FileStore

    args = ("run", str(SAMPLES / "outdoor-gear-circularity.txt"), "--brand", "decathlon", "--run-id", "resume")
    assert run_cli(*args, output_dir=output_dir).returncode == 0
    stage1 = (output_dir / "resume" / STAGE_FILES[1]).stat().st_mtime_ns
    # Rewind run.json to "stage 1 finished, then the process died".
    run_file = output_dir / "resume" / "run.json"
    doc = json.loads(run_file.read_text())
    doc.update(status="PROCESSING", completed_at=None, current_stage=1)
    doc["stages"] = {"1": doc["stages"]["1"]}
    run_file.write_text(json.dumps(doc))
    (output_dir / "resume" / "report.md").unlink()

    result = run_cli(*args, output_dir=output_dir)
    assert result.returncode == 0, result.stderr
    assert "[1/5] input processing already done (resumed)" in result.stderr
    assert "[2/5] signal amplification done" in result.stderr
    assert (output_dir / "resume" / STAGE_FILES[1]).stat().st_mtime_ns == stage1  # not recomputed
    state = FileStore(output_dir).get_run("resume")
    assert state is not None and state.status.value == "COMPLETED" and state.attempt == 2


# -- bad input ------------------------------------------------------------------------------


def test_an_unknown_brand_lists_the_valid_ids_and_records_nothing(output_dir):
    result = run_cli("run", str(SAMPLES / "convenience-reinvented.md"), "--brand", "acme", output_dir=output_dir)
    assert result.returncode == 2
    for brand in ("lactalis-canada", "mccormick-usa", "columbia-sportswear", "decathlon"):
        assert brand in result.stderr
    assert list(output_dir.iterdir()) == []


def test_a_missing_document_is_a_usage_error(output_dir):
    result = run_cli("run", "no/such/file.pdf", "--brand", "decathlon", output_dir=output_dir)
    assert result.returncode == 2 and "does not exist" in result.stderr
    assert list(output_dir.iterdir()) == []


def test_an_unsupported_file_type_is_a_usage_error(output_dir, tmp_path):
    doc = tmp_path / "deck.pptx"
    doc.write_bytes(b"PK\x03\x04")
    result = run_cli("run", str(doc), "--brand", "decathlon", output_dir=output_dir)
    assert result.returncode == 2 and ".pdf, .txt or .md" in result.stderr


@pytest.mark.parametrize(
    ("fixture", "code"),
    [
        ("corrupt_pdf", "PDF_CORRUPT"),
        ("truncated_pdf", "PDF_CORRUPT"),
        ("image_only_pdf", "PDF_NO_TEXT"),
        ("encrypted_pdf", "PDF_ENCRYPTED"),
        ("zero_page_pdf", "PDF_EMPTY"),
    ],
)
def test_unusable_pdfs_fail_the_run_with_a_code_and_a_clear_message(fixture, code, output_dir, tmp_path):
    doc = tmp_path / f"{fixture}.pdf"
    doc.write_bytes(getattr(pdf_fixtures, fixture)())
    result = run_cli("run", str(doc), "--brand", "decathlon", "--run-id", "bad", output_dir=output_dir)
    assert result.returncode == 1, result.stderr
    error = summary(result)["error"]
    assert error["code"] == code and error["stage"] == 1 and len(error["message"]) > 20
    run = json.loads((output_dir / "bad" / "run.json").read_text())
    assert run["status"] == "FAILED" and run["error"] == error


def test_an_empty_text_document_fails_clearly(output_dir, tmp_path):
    doc = tmp_path / "empty.md"
    doc.write_text("   \n\n ")
    result = run_cli("run", str(doc), "--brand", "decathlon", "--run-id", "empty", output_dir=output_dir)
    assert result.returncode == 1 and summary(result)["error"]["code"] == "DOCUMENT_EMPTY"


def test_invalid_mode_refuses_to_start(output_dir):
    env = {"ENABLE_DATABASE_WRITES": "false", "ENABLE_FILE_FALLBACK": "false"}
    result = run_cli("run", str(SAMPLES / "convenience-reinvented.md"), "--brand", "decathlon",
                     output_dir=output_dir, env=env)
    assert result.returncode == 2 and "ENABLE_FILE_FALLBACK" in result.stderr
    assert list(output_dir.iterdir()) == []


def test_a_mistyped_flag_value_exits_2_naming_the_variable(output_dir):
    result = run_cli("run", str(SAMPLES / "convenience-reinvented.md"), "--brand", "decathlon",
                     output_dir=output_dir, env={"ENABLE_FILE_FALLBACK": "ture"})
    assert result.returncode == 2
    assert "ENABLE_FILE_FALLBACK='ture' is not a boolean" in result.stderr


@pytest.mark.parametrize("run_id", ["../x", "a/b", "x" * 65, "..", "has space"])
def test_a_run_id_that_could_escape_is_refused(run_id, output_dir):
    result = run_cli("run", str(SAMPLES / "convenience-reinvented.md"), "--brand", "decathlon",
                     "--run-id", run_id, output_dir=output_dir)
    assert result.returncode == 2 and "run id" in result.stderr
    assert list(output_dir.parent.iterdir()) == [output_dir] and list(output_dir.iterdir()) == []


def test_help_teaches_the_commands_and_exit_codes():
    result = subprocess.run([sys.executable, "-m", "pipeline", "run", "--help"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0
    for words in ("--brand", "--run-id", "python -m pipeline brands", "exit codes", "resumes"):
        assert words in result.stdout


def test_brands_lists_and_validates_every_profile(output_dir):
    result = run_cli("brands", output_dir=output_dir)
    assert result.returncode == 0, result.stderr
    assert summary(result)["brands"] == ["columbia-sportswear", "decathlon", "lactalis-canada", "mccormick-usa"]


def test_brands_exits_2_naming_the_broken_profile(tmp_path, output_dir):
    brands = tmp_path / "data" / "brand-profiles"
    brands.mkdir(parents=True)
    (brands / "broken.yaml").write_text("brand_name: Broken\ncountry: ''\n")
    result = run_cli("brands", output_dir=output_dir, env={"DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 2
    assert "broken.yaml" in result.stderr and "country" in result.stderr
