"""Model cards: one name per pretrained weight, one resolve function, installs outside the package."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from faceforge.checkpoints import save_checkpoint
from faceforge.errors import UnknownModelError, WeightsNotFoundError
from faceforge.models import cards, get_spec, list_models


def test_every_card_names_a_registered_architecture_and_every_shipped_file_exists():
    archs = set(list_models())
    for card in cards.CARDS.values():
        assert card.arch in archs, card.name
        assert card.name.startswith(card.arch + "."), card.name
        if card.shipped:
            assert card.package_path.is_file(), f"{card.name}: {card.file} is marked shipped but absent"
            prov = card.provenance()
            assert prov.get("arch") == card.arch, card.name  # the provenance JSON describes this very file
        assert card.data_terms, card.name
    # at most one default card per architecture
    for arch in archs:
        assert sum(c.default for c in cards.list_cards(arch=arch)) <= 1, arch


def test_shipped_json_carries_no_absolute_path_of_the_build_machine():
    """Weights JSONs, checkpoint-side provenance, the manifest and the committed benchmark results."""
    import re

    absolute = re.compile(r'"(/(work|home|root|tmp|Users|mnt)/|[A-Z]:\\\\)')
    shipped = [c.package_path.with_suffix(".json") for c in cards.CARDS.values() if c.package_path.is_file()]
    manifest = cards.PACKAGE_WEIGHTS_DIR.parents[1] / "mobile_assets" / "manifest.json"
    results = sorted((cards.PACKAGE_WEIGHTS_DIR.parents[1] / "benchmarks" / "results").glob("*.json"))
    for path in shipped + ([manifest] if manifest.is_file() else []) + results:
        found = absolute.search(path.read_text())
        assert found is None, f"{path.name} holds an absolute path: {found.group(0) if found else ''}"


def test_trained_input_size_comes_from_the_weights_not_the_architecture_default():
    card = cards.get_card("pix2pix_mobile.frontalize")
    assert get_spec("pix2pix_mobile").input.shape[-1] == 256  # the architecture's default configuration
    assert card.trained_input_size() == 128                  # what the shipped weights were trained at
    assert cards.get_card("stylegan2.utkface32").trained_input_size() == 32


def test_resolve_order_explicit_env_default(tmp_path, monkeypatch):
    card = cards.get_card("stylegan2.utkface32")
    explicit = tmp_path / "mine.pt"
    explicit.write_bytes(b"x")
    assert cards.resolve(explicit, card, environ={card.env: "/nope"}) == explicit
    assert cards.resolve(None, card, environ={card.env: str(explicit)}) == explicit
    assert cards.resolve(None, card, environ={}) == card.package_path
    assert cards.resolve("stylegan2.anime32", card, environ={}) == cards.get_card("stylegan2.anime32").package_path
    with pytest.raises(WeightsNotFoundError, match="not found"):
        cards.resolve(tmp_path / "absent.pt", card, environ={})
    with pytest.raises(UnknownModelError, match="known:"):
        cards.resolve(None, "stylegan2.nope", environ={})


def test_install_goes_to_the_user_folder_and_wins_over_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEFORGE_HOME", str(tmp_path / "home"))
    card = cards.get_card("mini_xception.fer2013")
    shipped = card.path
    ckpt = save_checkpoint(tmp_path / "best.pt", torch.nn.Linear(2, 2), "mini_xception", {})
    dest = cards.install(ckpt, card, provenance={"command": "test"})
    assert dest == tmp_path / "home" / "weights" / card.file
    assert json.loads(dest.with_suffix(".json").read_text()) == {"command": "test"}
    assert card.path == dest and card.path != shipped and get_spec("mini_xception").default_weights_path == dest
    with pytest.raises(ValueError, match="package"):
        cards.install(ckpt, card, dest_dir=cards.PACKAGE_WEIGHTS_DIR)


def test_missing_default_names_the_variable_and_the_train_command_without_paths(without_card):
    without_card("cyclegan_resnet9.age")
    with pytest.raises(WeightsNotFoundError) as info:
        cards.resolve("default", "cyclegan_resnet9.age", environ={})
    text = str(info.value)
    assert "FACEFORGE_TRANSLATE_AGE_WEIGHTS" in text and "faceforge train cyclegan" in text
    assert str(cards.PACKAGE_WEIGHTS_DIR) not in text  # a server's 503 must not leak its paths


def test_models_command_lists_every_card_truthfully():
    from faceforge.cli import main

    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0, result.output
    for name, card in cards.CARDS.items():
        line = next(line for line in result.output.splitlines() if line.strip().startswith(name + " "))
        assert (" package " in line) == card.package_path.is_file(), line
    doc = json.loads(CliRunner().invoke(main, ["models", "--json", "--task", "frontalize"]).output)
    assert [c["name"] for c in doc["cards"]] == ["pix2pix_mobile.frontalize"]
    assert doc["cards"][0]["input_size"] == 128 and doc["cards"][0]["available"] in (True, False)


def test_expected_path_is_the_installed_copy_else_the_package_path(tmp_path, monkeypatch):
    from faceforge.models import cards

    card = cards.get_card("gpen.utkface64")  # not shipped: no package copy
    monkeypatch.setattr(cards, "user_weights_dir", lambda *a, **k: tmp_path)
    assert not card.package_path.is_file() and card.expected_path == card.package_path
    (tmp_path / card.file).write_bytes(b"x")
    assert card.expected_path == card.path == tmp_path / card.file
