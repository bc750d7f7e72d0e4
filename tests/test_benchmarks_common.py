"""Helpers every benchmark shares (benchmarks/__init__.py)."""

from __future__ import annotations


def test_results_record_paths_relative_to_the_repository(tmp_path):
    from benchmarks import REPO_ROOT, display_path

    assert display_path(REPO_ROOT / "data" / "utkface_age" / "testA") == "data/utkface_age/testA"
    assert display_path(REPO_ROOT.parent / "shared" / "data") == "../shared/data"
    assert not display_path(tmp_path / "x.png").startswith("/")
