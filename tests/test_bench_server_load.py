"""The server-load benchmark's figures and tables (and one real, tiny run against gunicorn)."""

from __future__ import annotations

import os

import pytest

from benchmarks import server_load as sl


def test_percentiles_and_rss():
    assert sl.percentiles([]) == {"p50": None, "p95": None, "p99": None}
    p = sl.percentiles(list(range(1, 101)))
    assert p["p50"] == pytest.approx(50.5, abs=0.1) and p["p95"] == pytest.approx(95.05, abs=0.1)
    assert p["p99"] == pytest.approx(99.01, abs=0.1)
    mine = sl.rss_mib([os.getpid()])
    assert 10 < mine < 100_000                      # this pytest process is resident
    assert sl.rss_mib([2 ** 22 + 12345]) == 0        # an unknown pid counts nothing


def test_markdown_reports_lost_jobs_and_the_compute_ratio():
    light = {"clients": 4, "requests": 40, "ok": 40, "throughput": 9.0, "p50": 430.0, "p95": 500.0, "p99": 530.0,
             "429": 0, "503": 0, "errors": 0}
    heavy = {"clients": 4, "jobs": 8, "throughput": 2.0, "p50": 300.0, "p95": 450.0, "succeeded": 7, "failed": 0,
             "lost": 1, "429": 2}
    doc = {"machine": "x86_64, 2 cores", "python": "3.11", "photo": "obama.jpg", "duration_s": 10, "jobs_per_client": 2,
           "compute_ms": 116.9, "compute_limit_rps": 17.11,
           "backends": {"celery": {"light": [light], "heavy": [heavy], "rss_mib": 1113.1, "best_light_rps": 9.0,
                                   "ratio_to_compute_limit": 0.526}}}
    text = sl.markdown(doc)
    assert "| celery | 4 | 40 | 9.0 | 430.0 | 500.0 | 530.0 | 0 | 0 | 0 |" in text
    assert "| celery | 9.0 | 0.526 | 1113.1 |" in text and "**1** |" in text


@pytest.mark.slow
def test_a_real_run_against_gunicorn_with_the_inprocess_backend(tmp_path):
    pytest.importorskip("gunicorn")
    doc = sl.run(clients=(1,), duration_s=1.0, jobs=1, backends=("inprocess",), out_dir=tmp_path)
    b = doc["backends"]["inprocess"]
    assert b["light"][0]["ok"] >= 1 and b["light"][0]["errors"] == 0
    assert b["heavy"][0]["succeeded"] == 1 and b["heavy"][0]["lost"] == 0
    assert b["rss_mib"] > 50 and doc["compute_ms"] > 0
    assert (tmp_path / "server_load.md").is_file() and (tmp_path / "server_load.png").is_file()

