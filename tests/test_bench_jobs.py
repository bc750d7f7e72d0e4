"""``benchmarks.jobs_roundtrip`` end to end on the shipped 32 px generator: the round trip of every job
endpoint over real HTTP, a burst of 3 simultaneous clients against one worker and one queue slot (so at
least one 429), and clients that disconnect. Tiny settings: one repeat, 2 projection steps.
"""

from __future__ import annotations

import json

import pytest

from benchmarks.jobs_roundtrip import ENDPOINTS, run


@pytest.fixture(scope="module")
def default_weights():
    from faceforge.models import get_spec

    path = get_spec("stylegan2").default_weights_path
    if path is None or not path.is_file():
        pytest.skip("faceforge ships no default StyleGAN2 weights in this checkout")
    return path


def test_jobs_roundtrip_benchmark(tmp_path, default_weights, astronaut_rgb, request):
    pytest.importorskip("requests")
    from PIL import Image

    photo = tmp_path / "astronaut.png"
    Image.fromarray(astronaut_rgb).save(photo)
    try:  # swap's source: another person's photo from the shared data; without it the row is skipped
        source = request.getfixturevalue("data_dir") / "photos" / "portraits" / "biden.jpg"
    except pytest.skip.Exception:
        source = None
    source = source if source is not None and source.is_file() else None
    out = tmp_path / "results"
    # the shipped generator doubles as the "cartoon" fine-tune: toonify's mechanics do not depend on it
    doc = run(weights="default", toon_weights=str(default_weights), photo=photo, source_photo=source, repeats=1,
              warmup=0,
              project_steps=2, clients=(1, 3), max_jobs=1, workers=1, burst_seeds=16, out_dir=out, name="jr",
              plot=False)

    assert json.loads((out / "jr.json").read_text())["settings"]["max_jobs"] == 1
    md = (out / "jr.md").read_text()
    assert "| generate |" in md and "## Concurrent clients" in md and "## Clients that disconnect" in md
    assert not (out / "jr.png").exists()

    rows = {r["endpoint"]: r for r in doc["endpoints"]}
    assert list(rows) == list(ENDPOINTS)
    images = {"generate": 1, "style-mix": 1, "toonify": 1, "project": 2, "morph": 5, "edit": 3, "makeup": 1,
              "swap": 1, "restore": 1, "virtual-model": 1}
    if source is None:
        assert rows.pop("swap") == {"endpoint": "swap", "status": "skipped", "reason": "no source photo given"}
    assert rows["restore"]["outcome"]["method"] in ("classical", "gpen")  # what method=auto chose
    assert rows["virtual-model"]["outcome"]["status"] in ("swapped", "unchanged")
    for task, row in rows.items():
        assert row["status"] == "ok", row
        assert row["done_ms"] >= row["run_ms"] > 0 and row["post_ms"] > 0 and row["polls"] >= 1
        assert row["result_bytes"] > row["png_bytes"] > 0 and row["images"] == images[task]

    k1, k3 = doc["concurrency"]
    assert (k1["clients"], k1["accepted"], k1["rejected"]) == (1, 1, 0)
    assert k3["clients"] == 3 and k3["accepted"] + k3["rejected"] == 3 and k3["other"] == 0
    # one worker busy with a 16-image job and one waiting slot: the third simultaneous client is refused
    assert k3["rejected"] >= 1 and k3["accepted"] >= 1 and all(s >= 1 for s in k3["retry_after_s"])
    assert k3["rejected_without_retry_after"] == 0
    for row in (k1, k3):
        assert row["all_accepted_succeeded"] and row["succeeded"] == row["accepted"] and not row["errors"]
        assert row["done_ms_max"] >= row["done_ms_median"] > 0

    assert [r["succeeded"] for r in doc["disconnects"]] == [True, True]


def test_jobs_roundtrip_skips_and_cli(tmp_path):
    from click.testing import CliRunner

    from benchmarks.cli import bench
    from benchmarks.jobs_roundtrip import markdown

    result = CliRunner().invoke(bench, ["jobs-roundtrip", "--help"])
    assert result.exit_code == 0 and "--max-jobs" in result.output and "--toon-weights" in result.output
    with pytest.raises(FileNotFoundError):
        run(photo=tmp_path / "absent.jpg")
    with pytest.raises(ValueError):
        run(clients=(0,))
    doc = {"date": "d", "machine": "m", "torch": "t", "threads": 1, "concurrency": [], "disconnects": [],
           "settings": {"server": "s", "client": "c", "weights": "default", "toon_weights": None, "job_workers": 1,
                        "max_jobs": 4, "poll_ms": 20, "repeats": 1, "warmup": 0, "burst_seeds": 4},
           "endpoints": [{"endpoint": "toonify", "status": "skipped", "reason": "no toon weights"}]}
    assert "| toonify | skipped: no toon weights |" in markdown(doc)


def test_polite_round_trip_retries_a_full_queue_and_nothing_else(monkeypatch):
    """A 429 is retried after its Retry-After; any other refusal, or a 429 past the timeout, is raised."""
    from benchmarks import jobs_roundtrip as jr

    answers = [jr.JobRequestError("full", 429, {}, retry_after=0), jr.JobRequestError("full", 429, {}, retry_after=0),
               {"status": "succeeded"}]

    def fake(*args, **kwargs):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(jr, "round_trip", fake)
    assert jr.polite_round_trip(None, "http://x", "generate", {}) == {"status": "succeeded"} and not answers
    answers[:] = [jr.JobRequestError("bad", 422, {})]
    with pytest.raises(jr.JobRequestError, match="bad"):
        jr.polite_round_trip(None, "http://x", "generate", {})
    answers[:] = [jr.JobRequestError("full", 429, {}, retry_after=0)] * 3
    with pytest.raises(jr.JobRequestError, match="full"):
        jr.polite_round_trip(None, "http://x", "generate", {}, timeout_s=-1.0)
