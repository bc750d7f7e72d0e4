"""The trainer skeleton (training.loop) and the options generated from the config dataclasses
(training.options): defaults exist once, runs resume, a held run is refused, metrics and logs are written."""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field

import click
import numpy as np
import pytest
from click.testing import CliRunner

from training import configs
from training.loop import LOGGER_NAME, StepLoop, TrainingRun
from training.options import config_from_options, config_options, field_options, opt
from training.runs import LOCK_NAME

CONFIGS = [configs.EmotionConfig, configs.AgeConfig, configs.CycleGANConfig, configs.FrontalizeConfig,
           configs.PosePairConfig, configs.GPENTrainConfig, configs.StyleGAN2TrainConfig, configs.AttributesConfig,
           configs.FaceShifterTrainConfig]


# --------------------------------------------------------------------------------------------------
# options from dataclasses

@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_every_option_default_is_the_dataclass_default_and_has_help(cls):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    instance = cls()
    options = field_options(cls)
    assert options, cls
    for o in options:
        f = fields[o.name]
        assert o.help, f"{cls.__name__}.{o.name} has no help text"
        if (f.default is dataclasses.MISSING or f.default == "") and not o.multiple:
            assert o.default is None  # a default_factory (or the unset "") decides at config time
        elif o.multiple:
            assert list(o.default) == list(getattr(instance, o.name) or [])
        elif isinstance(getattr(instance, o.name), list) or o.name == "widths":  # a sep-separated list
            assert o.default is None
        else:
            assert o.default == getattr(instance, o.name), f"{cls.__name__}.{o.name}"
    # all defaults given back build the dataclass's own defaults: nothing is restated in between
    values = {o.name: o.default for o in options}
    assert config_from_options(cls, values) == instance


COMMANDS = {"emotion": configs.EmotionConfig, "age": configs.AgeConfig, "cyclegan": configs.CycleGANConfig,
            "frontalize": configs.FrontalizeConfig, "frontalize-pairs": configs.PosePairConfig,
            "gpen": configs.GPENTrainConfig, "stylegan2": configs.StyleGAN2TrainConfig,
            "attributes": configs.AttributesConfig, "faceshifter": configs.FaceShifterTrainConfig}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_faceforge_train_options_are_the_generated_ones(name):
    """Each ``faceforge train`` command carries its config's generated options unchanged; the only options
    whose default is not the dataclass's are StyleGAN2's preset-driven ones (None = the preset's value)."""
    from training.cli import train

    cls = COMMANDS[name]
    params = {p.name: p for p in train.commands[name].params}
    preset = {k for p in configs.STYLEGAN2_PRESETS.values() for k in p} | {"lr", "total_kimg"}
    for o in field_options(cls):
        assert o.name in params, (name, o.name)
        if name == "stylegan2" and o.name in preset:
            assert params[o.name].default is None
        else:
            assert params[o.name].default == o.default and params[o.name].opts == o.opts, (name, o.name)


def _command(cls):
    @click.command()
    @config_options(cls)
    def cmd(**values):
        click.echo(json.dumps(dataclasses.asdict(config_from_options(cls, values))))
    return cmd


@dataclass
class _Toy:
    steps: int = field(default=10, metadata=opt("Steps.", name="--n", min=1))
    mirror: bool = field(default=True, metadata=opt("Flip."))
    fast: bool = field(default=False, metadata=opt("Faster."))
    size: int = field(default=64, metadata=opt("Side.", choices=(64, 96)))
    tags: list[str] = field(default_factory=list, metadata=opt("Tag (repeatable)."))
    widths: list[int] | None = field(default=None, metadata=opt("Widths.", sep=","))
    limit: int | None = field(default=None, metadata=opt("Cap."))
    extra: dict = field(default_factory=dict)
    hidden: str = field(default="x", metadata=opt("Not an option.", cli=False))
    cache: str | None = field(default_factory=lambda: "/factory/path", metadata=opt("Cache.", path="dir"))
    source: str = field(default="", metadata=opt("Source folder (checked when given).", path="dir", exists=True))


def test_generated_options_map_types_flags_choices_and_repeats():
    cmd = _command(_Toy)
    runner = CliRunner()
    out = json.loads(runner.invoke(cmd, []).output)
    assert out == dataclasses.asdict(_Toy())
    out = json.loads(runner.invoke(cmd, ["--n", "3", "--no-mirror", "--fast", "--size", "96", "--tags", "a", "--tags",
                                         "b", "--widths", "8,16", "--limit", "5",
                                         "--cache", "/tmp"]).output)
    assert out == {**dataclasses.asdict(_Toy()), "steps": 3, "mirror": False, "fast": True, "size": 96,
                   "tags": ["a", "b"], "widths": [8, 16], "limit": 5, "cache": "/tmp"}
    assert runner.invoke(cmd, ["--size", "50"]).exit_code == 2
    assert runner.invoke(cmd, ["--widths", "8,x"]).exit_code == 2
    assert runner.invoke(cmd, ["--source", "/no/such/folder"]).exit_code == 2  # exists= checks a given path only
    assert runner.invoke(cmd, ["--n", "0"]).exit_code == 2
    assert runner.invoke(cmd, ["--hidden", "y"]).exit_code == 2 and runner.invoke(cmd, ["--extra", "y"]).exit_code == 2
    text = runner.invoke(cmd, ["--help"]).output
    assert "--mirror / --no-mirror" in text and "Steps." in text and "[default: 10; x>=1]" in text


def test_unmappable_field_type_is_an_error_not_a_silent_skip():
    @dataclass
    class Bad:
        when: complex = 1j

    with pytest.raises(TypeError, match="cli=False"):
        field_options(Bad)


@pytest.mark.parametrize("command,options", [
    ("emotion", ["--epochs", "--data", "--ema", "--teacher", "--resume", "--install"]),
    ("cyclegan", ["--data", "--epochs", "--epochs-decay", "--ngf", "--n-blocks", "--time-limit", "--stop-after",
                  "--workers", "--install"]),
    ("gpen", ["--steps", "--size", "--lambda-id", "--cache-dir", "--log-every"]),
    ("stylegan2", ["--preset", "--kimg", "--no-mirror", "--finetune-from", "--install"]),
    ("frontalize", ["--input", "--num-downs", "--crop-size", "--eval-every"]),
    ("frontalize-pairs", ["--faces", "--dest", "--no-measure-yaw"]),
    ("age", ["--holdout", "--size", "--faces", "--install"]),
    ("faceshifter", ["--size", "--width", "--steps", "--id-center", "--init-from", "--lambda-id", "--cache-dir",
                     "--log-every", "--eval-every", "--sample-every", "--save-every", "--time-limit"]),
])
def test_train_help_keeps_the_documented_option_names(command, options):
    from faceforge.cli import main

    result = CliRunner().invoke(main, ["train", command, "--help"])
    assert result.exit_code == 0, result.output
    for name in options:
        assert name in result.output, (command, name)


# --------------------------------------------------------------------------------------------------
# the skeleton

@dataclass
class _LoopConfig:
    runs_dir: str = "runs"
    lr: float = 0.1
    resume: str | None = None
    stop_after_steps: int | None = None
    time_limit_min: float | None = None
    progress: bool = False


def _toy_train(cfg: _LoopConfig, total: int = 10) -> tuple[TrainingRun, StepLoop]:
    """A trainer in the skeleton: a counter whose 'loss' is its step; state = the step."""
    session = TrainingRun("toy", cfg, ("resume", "stop_after_steps", "time_limit_min", "progress"))
    start = int((session.run / "last.pt").read_text()) if session.resumed else 0
    session.create({"note": "toy"})
    metrics = session.metrics()
    with StepLoop(session, total, start, session.cfg) as loop:
        while loop.running:
            loop.record({"loss": float(loop.step)}, 0.01)
            if loop.due(3, at_stop=False):
                window, seconds, _ = loop.take_window()
                metrics.log(step=loop.step, loss=sum(window["loss"]) / len(window["loss"]), n=len(seconds))
            if loop.due(4):
                (session.run / "last.pt").write_text(str(loop.step))
                session.save_grid(loop.step, np.zeros((4, 4, 3), np.uint8))
    return session, loop


def test_run_folder_resume_metrics_and_log(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    cfg = _LoopConfig(runs_dir=str(tmp_path), lr=0.5, stop_after_steps=5)
    session, loop = _toy_train(cfg)
    run = session.run
    assert run == tmp_path / "toy" / "000" and loop.step == 5 and not (run / LOCK_NAME).exists()
    stored = json.loads((run / "config.json").read_text())
    assert stored["config"]["lr"] == 0.5 and stored["note"] == "toy" and "command" in stored
    assert (run / "last.pt").read_text() == "5"  # saved on the stopping step (at_stop)
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_0000004.png", "step_0000005.png"]
    assert f"run {run}: stopped at step 5/10 (resume with --resume {run})" in caplog.messages

    caplog.clear()  # resume: the stored lr, this invocation's runtime fields; metrics appended under one header
    session, loop = _toy_train(_LoopConfig(runs_dir=str(tmp_path / "other"), lr=9.0, resume=str(run)))
    assert session.run == run and session.cfg.lr == 0.5 and session.cfg.resume == str(run) and loop.step == 10
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [3, 6, 9, 10]
    # windows of the step losses: 0-2 | (3, 4 end with the stop, unlogged) | 5 after the resume | 6-8 | 9 (the last)
    assert [float(r["loss"]) for r in rows] == [1.0, 5.0, 7.0, 9.0]
    assert f"run {run}: finished" in caplog.messages
    assert not (tmp_path / "other").exists()


def test_a_run_held_by_a_live_process_is_refused(tmp_path):
    session, _ = _toy_train(_LoopConfig(runs_dir=str(tmp_path), stop_after_steps=4))
    (session.run / LOCK_NAME).write_text(f"{os.getppid()}\n")  # a live process that is not this one
    with pytest.raises(RuntimeError, match=f"process {os.getppid()}"):
        _toy_train(_LoopConfig(resume=str(session.run)))
    assert (session.run / "last.pt").read_text() == "4"  # nothing ran
    (session.run / LOCK_NAME).write_text("999999999\n")  # a dead process's lock is taken over
    _, loop = _toy_train(_LoopConfig(resume=str(session.run)))
    assert loop.step == 10


def test_resume_of_a_folder_without_state_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="last.pt and config.json"):
        TrainingRun("toy", _LoopConfig(), ("resume",), resume=tmp_path)


def test_time_limit_stops_after_the_step_that_passes_it(tmp_path):
    cfg = _LoopConfig(runs_dir=str(tmp_path), time_limit_min=1e-9)
    _, loop = _toy_train(cfg)
    assert loop.step == 1 and loop.stop and loop.outcome().startswith("stopped at step 1/10")


def test_faceforge_train_shows_trainer_log_lines(tmp_path, monkeypatch):
    """``faceforge train`` routes the trainers' logging to stderr (they no longer print)."""
    import training.emotion as emotion
    from faceforge.cli import main

    def fake_train(cfg, resume=None):
        logging.getLogger(f"{LOGGER_NAME}.emotion").info("epoch=1 val_acc=0.5")
        return tmp_path

    monkeypatch.setattr(emotion, "train", fake_train)
    result = CliRunner().invoke(main, ["train", "emotion", "--epochs", "2"])
    assert result.exit_code == 0, result.output
    assert "epoch=1 val_acc=0.5" in result.output and f"run folder: {tmp_path}" in result.output


def test_attribute_classifier_trains_in_the_skeleton(tmp_path):
    """``faceforge train attributes`` (formerly argparse-only): checkpoint + card, and a run folder with
    config.json and one metrics row per epoch."""
    from faceforge.cli import main
    from faceforge.imaging import save_image

    faces = tmp_path / "utk"
    faces.mkdir()
    rng = np.random.default_rng(0)
    for i in range(24):
        save_image(faces / f"{20 + i}_{i % 2}_0_2017011617452{i:04d}.jpg.chip.jpg",
                   rng.integers(0, 255, (20, 20, 3), dtype=np.uint8))
    out = tmp_path / "w" / "attr.pt"
    result = CliRunner().invoke(main, ["train", "attributes", "--data", str(faces), "--size", "16", "--epochs", "2",
                                       "--batch-size", "8", "-o", str(out), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["images"] == 24 and card["heldout_images"] == 2 and card["command"].startswith("faceforge train")
    run = tmp_path / "runs" / "attributes" / "000"
    assert json.loads((run / "config.json").read_text())["config"]["size"] == 16
    assert [r["epoch"] for r in csv.DictReader((run / "metrics.csv").open())] == ["1", "2"]
    assert CliRunner().invoke(main, ["train", "attributes", "--data", str(faces)]).exit_code == 2  # no -o


def test_epoch_loop_rows_log_and_time_limit(tmp_path, caplog):
    from training.loop import EpochLoop

    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    session = TrainingRun("toy", _LoopConfig(runs_dir=str(tmp_path)), ("resume",))
    session.create()
    loop = EpochLoop(session, 3, metrics=session.metrics())
    seen = []
    for epoch in loop:
        seen.append(sum(1 for _ in loop.steps(4, epoch)))
        loop.log_row(epoch=epoch + 1, loss=0.5)
    assert seen == [4, 4, 4] and not loop.stopped
    assert [r["epoch"] for r in csv.DictReader((session.run / "metrics.csv").open())] == ["1", "2", "3"]
    assert "epoch=2 loss=0.5" in caplog.messages

    limited = EpochLoop(session, 3, start=1, time_limit_min=1e-9)  # stops after its first epoch, epochs left
    assert list(limited) == [1] and limited.stopped
    assert f"time limit reached after epoch 2/3; continue with resume={session.run}" in caplog.messages
    last = EpochLoop(session, 3, start=2, time_limit_min=1e-9)  # the last epoch: nothing left to stop before
    assert list(last) == [2] and not last.stopped
