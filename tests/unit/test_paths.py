"""A run id or brand id can never reach outside its folder."""

from __future__ import annotations

import pytest

from config.errors import InvalidInput
from config.paths import check_brand_id, check_run_id, inside
from persistence.files import FileStore

TRAVERSALS = ["../x", "..", "a/b", "/etc/passwd", "x\x00y", "", "a" * 65, "run id", "..\\x", "%2e%2e"]


@pytest.mark.parametrize("run_id", TRAVERSALS)
def test_bad_run_ids_are_refused(run_id):
    with pytest.raises(InvalidInput, match="run id"):
        check_run_id(run_id)


@pytest.mark.parametrize("run_id", ["a", "run-20261124-abc", "A_b-9", "x" * 64])
def test_good_run_ids_pass(run_id):
    assert check_run_id(run_id) == run_id


@pytest.mark.parametrize("brand_id", ["../lactalis-canada", "Decathlon", "-x", "a/b", "", "x" * 65, "a.yaml"])
def test_bad_brand_ids_are_refused(brand_id):
    with pytest.raises(InvalidInput, match="brand id"):
        check_brand_id(brand_id)


def test_inside_refuses_a_path_that_escapes_its_root(tmp_path):
    assert inside(tmp_path, "a", "b") == tmp_path.resolve() / "a" / "b"
    with pytest.raises(InvalidInput):
        inside(tmp_path, "..", "elsewhere")


def test_inside_refuses_a_symlink_that_points_outside(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path)
    with pytest.raises(InvalidInput):
        inside(tmp_path / "root", "link", "x")


@pytest.mark.parametrize("run_id", ["../x", "../../etc", "/tmp/x"])
def test_file_store_refuses_traversal_and_writes_nothing(tmp_path, run_id):
    root = tmp_path / "out"
    root.mkdir()
    with pytest.raises(InvalidInput):
        FileStore(root).run_dir(run_id)
    assert list(tmp_path.iterdir()) == [root]
