"""The core data layer (faceforge.data): the shared splits are defined once and written to named split
files; missing data is a clear DatasetNotFoundError; the stages read the same images through it."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from faceforge.data import images as data_images
from faceforge.data.utkface import (AGE_SPLIT_FILE, age_split, crc_split, is_held_out, parse_utkface_name,
                                    read_split_file, scan_utkface, shuffled_split, write_split_file, young_faces)
from faceforge.errors import DatasetNotFoundError
from faceforge.imaging import save_image


def _names(n_young: int = 12, n_old: int = 6, n_mid: int = 3) -> list[str]:
    names = [f"{18 + i % 12}_{i % 2}_{i % 5}_2017011617452{i:04d}.jpg.chip.jpg" for i in range(n_young)]
    names += [f"{60 + i}_{i % 2}_{i % 5}_2017011717452{i:04d}.jpg.chip.jpg" for i in range(n_old)]
    names += [f"{40 + i}_0_0_2017011817452{i:04d}.jpg.chip.jpg" for i in range(n_mid)]
    return names


def _folder(tmp_path: Path, names: list[str]) -> Path:
    src = tmp_path / "utkface"
    src.mkdir()
    for name in names:
        save_image(src / name, np.full((8, 8, 3), 128, np.uint8))
    return src


def test_shuffled_split_rounds_half_up_and_is_a_partition():
    train, test = shuffled_split(25, 0.1, random.Random(0))  # 2.5 -> 3
    assert len(test) == 3 and sorted(train + test) == list(range(25)) and train == sorted(train)
    assert shuffled_split(25, 0.1, random.Random(0)) == (train, test)
    assert shuffled_split(25, 0.1, random.Random(1)) != (train, test)


def test_age_split_is_what_build_age_split_writes_and_its_named_split_file(tmp_path):
    from training.unpaired import SPLIT_FILE_NAME, build_age_split

    src = _folder(tmp_path, _names())
    records, _ = scan_utkface(src)
    split = age_split(records, test_fraction=0.25, seed=3)
    assert {k: len(v) for k, v in split.items()} == {"trainA": 9, "trainB": 4, "testA": 3, "testB": 2}
    build_age_split(src, tmp_path / "out", mode="copy", test_fraction=0.25, seed=3, progress=False)
    for folder, recs in split.items():
        assert sorted(p.name for p in (tmp_path / "out" / folder).iterdir()) == [r.path.name for r in recs]
    body = read_split_file(tmp_path / "out" / SPLIT_FILE_NAME)
    assert body["name"] == "utkface_age" and body["about"]["seed"] == 3
    assert body["splits"] == {k: [r.path.name for r in v] for k, v in split.items()}
    with pytest.raises(ValueError, match="young"):
        age_split(records, young=(18, 70))


def test_young_faces_follow_the_split_file_not_a_replayed_draw(tmp_path):
    names = _names()
    src = _folder(tmp_path, names)
    young = [n for n in names if 18 <= parse_utkface_name(n).age <= 29]
    held = young[:2]
    split_file = write_split_file(tmp_path / "s.json", "utkface_age", {"testA": held, "testB": []}, seed=0)
    assert [r.path.name for r in young_faces("test", src, split_file)] == sorted(held)
    assert [r.path.name for r in young_faces("train", src, split_file)] == sorted(set(young) - set(held))
    other = write_split_file(tmp_path / "t.json", "utkface_age", {"testA": ["19_0_0_20990101000000000.jpg.chip.jpg"]})
    with pytest.raises(DatasetNotFoundError, match="another copy"):
        young_faces("test", src, other)
    with pytest.raises(ValueError, match="split"):
        young_faces("val", src, split_file)


def test_shipped_split_file_is_the_default_draw_on_the_real_data(data_dir):
    """The calibration/parity split is the file; this checks it still equals its definition."""
    if not (data_dir / "utkface").is_dir():
        pytest.skip(f"no utkface folder in {data_dir}")
    body = read_split_file(AGE_SPLIT_FILE)
    split = age_split(scan_utkface(data_dir / "utkface")[0])
    assert body["splits"]["testA"] == [r.path.name for r in split["testA"]]
    assert body["splits"]["testB"] == [r.path.name for r in split["testB"]]
    assert body["about"]["counts"] == {k: len(v) for k, v in split.items()}
    assert AGE_SPLIT_FILE.stat().st_size < 100_000


def test_crc_split_is_by_name_only():
    files = [Path(f"/a/{i}.jpg") for i in range(200)]
    train, held = crc_split(files)
    assert len(held) == sum(is_held_out(f) for f in files) and 0 < len(held) < 30
    assert crc_split([Path("/elsewhere") / f.name for f in held])[1] == [Path("/elsewhere") / f.name for f in held]


def test_image_helpers(tmp_path):
    rgb = np.arange(30 * 20 * 3, dtype=np.uint8).reshape(30, 20, 3)
    assert data_images.center_square(rgb).shape == (20, 20, 3)
    assert data_images.center_square(rgb)[0, 0, 0] == rgb[5, 0, 0]
    assert data_images.resize_square(rgb, 10).shape == (10, 10, 3)
    assert data_images.resize_square(rgb[:10, :10], 10) is not None
    tile = data_images.label_tile(np.zeros((64, 64, 3), np.uint8), "x")
    assert tile.max() == 255 and tile.shape == (64, 64, 3)
    save_image(tmp_path / "b.png", rgb)
    save_image(tmp_path / "a.JPG", rgb)
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in data_images.list_images(tmp_path)] == ["a.JPG", "b.png"]
    faces = data_images.load_faces(data_images.list_images(tmp_path), 8, cache_dir=tmp_path / "cache")
    assert faces.shape == (2, 8, 8, 3) and len(list((tmp_path / "cache").glob("*.npy"))) == 1
    assert np.array_equal(data_images.load_faces(data_images.list_images(tmp_path), 8, cache_dir=tmp_path / "cache"),
                          faces)


def test_data_root_expands_home_in_the_environment_variable(monkeypatch, tmp_path):
    from faceforge.data.paths import DATA_ENV, REPO_ROOT, data_root

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv(DATA_ENV, "~/faces")
    assert data_root() == tmp_path / "faces"
    monkeypatch.delenv(DATA_ENV)
    assert data_root() == REPO_ROOT.parent / "shared" / "data"
