"""Brand profiles: the shipped ones load, and every kind of bad profile is named precisely."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
import yaml

from config.errors import InvalidInput, NotFound
from pipeline.brands import (
    BRAND_RECHECK_S,
    LIST_FIELDS,
    BrandProfile,
    is_brand_id,
    list_brand_ids,
    load_all_brands,
    load_brand,
    validate_profile,
)
from tests.statcount import stats_looked_at

SHIPPED_DIR = Path(__file__).resolve().parents[2] / "data" / "brand-profiles"
SHIPPED_IDS = ["columbia-sportswear", "decathlon", "lactalis-canada", "mccormick-usa"]


def valid_raw() -> dict:
    """A minimal profile that passes validation."""
    return {
        "brand_name": "Acme Foods",
        "country": "Canada",
        "industry": "Packaged food",
        "positioning": "Everyday pantry staples for busy Canadian families, sold in every grocer.",
        "product_portfolio": ["pasta sauce", "canned soup", "crackers"],
        "target_customers": ["busy parents", "students"],
        "recent_innovations": ["single-serve soup cups", "low-sodium sauces", "snack packs"],
        "strategic_priorities": ["convenience", "better-for-you", "e-commerce"],
        "brand_values": ["quality", "value", "family"],
    }


def write_profile(directory: Path, brand_id: str, raw: object) -> Path:
    path = directory / f"{brand_id}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def test_shipped_brand_ids_are_the_contract_ones():
    assert list_brand_ids(SHIPPED_DIR) == SHIPPED_IDS


@pytest.mark.parametrize("brand_id", SHIPPED_IDS)
def test_every_shipped_profile_loads_with_concrete_lists(brand_id):
    profile = load_brand(SHIPPED_DIR, brand_id)
    assert profile.brand_id == brand_id
    assert 50 <= len(profile.positioning) <= 500
    for field in LIST_FIELDS:
        items = getattr(profile, field)
        assert isinstance(items, tuple)
        assert 4 <= len(items) <= 7, f"{brand_id}.{field} should hold 4-7 items"
        assert all(item.strip() for item in items)


def test_load_all_brands_validates_every_shipped_profile():
    assert [profile.brand_id for profile in load_all_brands(SHIPPED_DIR)] == SHIPPED_IDS


def test_profile_is_frozen_and_serialises_to_json():
    profile = load_brand(SHIPPED_DIR, "mccormick-usa")
    with pytest.raises(dataclasses.FrozenInstanceError):
        profile.brand_name = "Other"  # type: ignore[misc]
    data = json.loads(json.dumps(profile.as_dict()))
    assert data["brand_id"] == "mccormick-usa"
    assert data["product_portfolio"] == list(profile.product_portfolio)


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("brand_name", None, "missing"),
        ("brand_name", 42, "wrong type: expected text, got a number"),
        ("country", "   ", "empty string"),
        ("industry", ["food"], "wrong type: expected text, got a list"),
        ("positioning", "Too short.", "too short: 10 characters, needs 50-500"),
        ("positioning", "x" * 501, "too long: 501 characters, needs 50-500"),
        ("product_portfolio", ["soup", "sauce"], "too few items: 2, needs at least 3"),
        ("target_customers", "parents", "wrong type: expected a list of text, got text"),
        ("recent_innovations", ["cups", 7, "packs"], "item 2: wrong type: expected text"),
        ("strategic_priorities", ["convenience", "", "value"], "item 2: empty string"),
        ("brand_values", {"quality": True}, "wrong type: expected a list of text, got a mapping"),
    ],
)
def test_invalid_field_is_named_with_file_and_problem(tmp_path, field, value, problem):
    raw = valid_raw()
    if value is None:
        del raw[field]
    else:
        raw[field] = value
    path = write_profile(tmp_path, "acme", raw)

    with pytest.raises(InvalidInput) as caught:
        load_brand(tmp_path, "acme")

    assert caught.value.code == "BRAND_PROFILE_INVALID"
    assert str(path) in caught.value.message
    assert f"{field}: {problem}" in caught.value.message


def test_all_problems_in_a_file_are_reported_in_one_message(tmp_path):
    raw = valid_raw()
    del raw["country"]
    raw["positioning"] = "short"
    raw["brand_values"] = ["quality"]
    with pytest.raises(InvalidInput) as caught:
        validate_profile(tmp_path / "acme.yaml", raw)
    message = caught.value.message
    assert "3 problem(s)" in message
    for expected in ("country: missing", "positioning: too short", "brand_values: too few items"):
        assert expected in message


@pytest.mark.parametrize("raw", [["a", "list"], "just text", None])
def test_profile_that_is_not_a_mapping_is_refused(tmp_path, raw):
    with pytest.raises(InvalidInput) as caught:
        validate_profile(tmp_path / "acme.yaml", raw)
    assert "acme.yaml" in caught.value.message
    assert "top level: wrong type: expected a mapping" in caught.value.message


def test_file_name_that_is_not_a_brand_id_is_a_problem(tmp_path):
    with pytest.raises(InvalidInput) as caught:
        validate_profile(tmp_path / "Acme Foods.yaml", valid_raw())
    assert "file name:" in caught.value.message


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "acme.yaml"
    path.write_text("brand_name: Acme\nbrand_values:\n  - quality\n - value\n", encoding="utf-8")
    with pytest.raises(InvalidInput) as caught:
        load_brand(tmp_path, "acme")
    assert caught.value.code == "BRAND_PROFILE_INVALID"
    assert str(path) in caught.value.message
    assert "line 4" in caught.value.message
    assert isinstance(caught.value.__cause__, yaml.YAMLError)


def test_unknown_brand_lists_the_valid_ids():
    with pytest.raises(NotFound) as caught:
        load_brand(SHIPPED_DIR, "nestle-france")
    assert caught.value.code == "UNKNOWN_BRAND"
    assert "nestle-france" in caught.value.message
    for brand_id in SHIPPED_IDS:
        assert brand_id in caught.value.message


def test_unknown_brand_in_an_empty_directory_says_there_are_none(tmp_path):
    with pytest.raises(NotFound, match="none"):
        load_brand(tmp_path / "missing", "acme")


@pytest.mark.parametrize(
    "brand_id", ["../x", "../../etc/passwd", "/etc/passwd", "a/b", "..", "", "Acme", "acme.yaml"]
)
def test_traversal_and_malformed_ids_are_refused_before_reading(tmp_path, brand_id):
    brands_dir = tmp_path / "brands"
    brands_dir.mkdir()
    write_profile(tmp_path, "x", valid_raw())  # a valid profile one level above the folder
    with pytest.raises(InvalidInput) as caught:
        load_brand(brands_dir, brand_id)
    assert caught.value.code == "INVALID_BRAND_ID"


def test_load_all_brands_names_every_broken_file(tmp_path):
    write_profile(tmp_path, "good", valid_raw())
    write_profile(tmp_path, "bad-one", {**valid_raw(), "country": ""})
    (tmp_path / "bad-two.yaml").write_text("brand_name: [unclosed\n", encoding="utf-8")
    with pytest.raises(InvalidInput) as caught:
        load_all_brands(tmp_path)
    assert "bad-one.yaml" in caught.value.message
    assert "bad-two.yaml" in caught.value.message
    assert "good.yaml" not in caught.value.message


def test_list_brand_ids_is_sorted_and_only_counts_yaml_files(tmp_path):
    for brand_id in ("zeta", "alpha"):
        write_profile(tmp_path, brand_id, valid_raw())
    (tmp_path / "notes.txt").write_text("not a profile", encoding="utf-8")
    (tmp_path / "folder.yaml").mkdir()
    assert list_brand_ids(tmp_path) == ["alpha", "zeta"]
    assert list_brand_ids(tmp_path / "missing") == []


def test_the_webhooks_brand_check_lists_the_folder_once_a_second_and_never_refuses_a_new_profile(
        tmp_path, monkeypatch):
    write_profile(tmp_path, "alpha", valid_raw())
    assert is_brand_id(tmp_path, "alpha")
    with stats_looked_at(monkeypatch) as looked:
        assert all(is_brand_id(tmp_path, "alpha") for _ in range(100))
    assert looked == []  # a known id: from this process's listing, no system call
    write_profile(tmp_path, "beta", valid_raw())
    for brand_id, known in (("beta", True), ("gamma", False)):  # unknown to the listing: looked up afresh
        with stats_looked_at(monkeypatch) as looked:
            assert is_brand_id(tmp_path, brand_id) is known
        assert tmp_path in looked


def test_a_removed_profile_is_refused_once_the_listing_is_a_second_old(tmp_path, monkeypatch):
    write_profile(tmp_path, "alpha", valid_raw())
    assert is_brand_id(tmp_path, "alpha")
    (tmp_path / "alpha.yaml").unlink()
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + BRAND_RECHECK_S)
    assert not is_brand_id(tmp_path, "alpha")


def test_text_values_are_stripped(tmp_path):
    raw = {**valid_raw(), "brand_name": "  Acme Foods  ", "brand_values": [" quality ", "a", "b"]}
    profile = validate_profile(tmp_path / "acme.yaml", raw)
    assert isinstance(profile, BrandProfile)
    assert profile.brand_name == "Acme Foods"
    assert profile.brand_values[0] == "quality"


def test_an_edited_profile_is_read_again_not_served_from_the_cache(tmp_path):
    import os
    import shutil

    shutil.copy(SHIPPED_DIR / "decathlon.yaml", tmp_path / "decathlon.yaml")
    assert load_brand(tmp_path, "decathlon").brand_name == "Decathlon"
    path = tmp_path / "decathlon.yaml"
    path.write_text(path.read_text().replace("brand_name: Decathlon", "brand_name: Decathlon Edited"))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a later version of the file
    assert load_brand(tmp_path, "decathlon").brand_name == "Decathlon Edited"
