"""Helpers every benchmark shares (benchmarks/__init__.py)."""

from __future__ import annotations


def test_results_record_paths_relative_to_the_repository(tmp_path):
    from benchmarks import REPO_ROOT, display_path

    assert display_path(REPO_ROOT / "data" / "utkface_age" / "testA") == "data/utkface_age/testA"
    assert display_path(REPO_ROOT.parent / "shared" / "data") == "../shared/data"
    assert not display_path(tmp_path / "x.png").startswith("/")


def test_round_trip_samples_split_transport_from_server_work():
    from benchmarks import ROUND_TRIP_FIELDS, add_round_trip, round_trip_samples

    samples, steps = round_trip_samples(), {}
    assert tuple(samples) == ROUND_TRIP_FIELDS and all(v == [] for v in samples.values())
    add_round_trip(samples, steps, 2.0, 50.0, {"detect": 10.0, "total": 30.0}, 1000, 200)
    add_round_trip(samples, steps, 3.0, 40.0, {}, 900, 100)  # no server timings: all of it is transport
    assert samples == {"encode": [2.0, 3.0], "round_trip": [50.0, 40.0], "server_total": [30.0, 0.0],
                       "transport": [20.0, 40.0], "upload_bytes": [1000, 900], "download_bytes": [200, 100]}
    assert steps == {"detect": [10.0], "total": [30.0]}


def test_phone_network_model_adds_rtts_and_transfer_at_the_profile_rates():
    from benchmarks import NETWORKS, NEW_CONNECTION_RTTS, phone_network_ms

    m = phone_network_ms(5.0, 100.0, 125_000, 250_000, (60.0, 10.0, 20.0))
    assert m["upload_ms"] == 100.0 and m["transfer_ms"] == 200.0  # 1 Mbit at 10 Mbit/s; 2 Mbit at 20 Mbit/s
    assert m["warm_ms"] == 5.0 + 100.0 + 60.0 + 200.0
    assert m["cold_ms"] == m["warm_ms"] + NEW_CONNECTION_RTTS * 60.0
    assert set(NETWORKS) == {"3G", "4G", "5G", "Wi-Fi"}


def test_parse_names_strips_and_drops_empty_items():
    from benchmarks import parse_names

    assert parse_names(" onnx, tflite_int8 ,,") == ["onnx", "tflite_int8"]
    assert parse_names("") == [] and parse_names("a") == ["a"]


def test_median_iqr_of_a_summary():
    from benchmarks import median_iqr
    from faceforge.metrics import summarize

    assert median_iqr(summarize([1.0, 2.0, 3.0, 4.0, 5.0])) == "3.00 [2.00, 4.00]"
    assert median_iqr(summarize([])) == "n/a" and median_iqr(None) == "n/a"
