"""Request bodies the job API must refuse with a 4xx problem, never a 500 (issue 11, item 7)."""

from __future__ import annotations

import io

import pytest

from problems import assert_problem  # tests/problems.py (tests/ is on sys.path)
from server import create_app


@pytest.fixture(scope="module")
def client():
    return create_app({"stylegan2_weights": "default", "torch_threads": None}).test_client()


def test_deeply_nested_json_is_a_400_not_a_500(client):
    body = '{"a":' * 2000 + "1" + "}" * 2000
    detail = assert_problem(client.post("/v1/generate", data=body, content_type="application/json"), 400,
                      "invalid-field")["detail"]
    assert "nested deeper" in detail
    # brackets inside strings do not count as nesting: this body gets past the depth check and is refused
    # for its seeds (no job is started, so no worker thread outlives the test)
    seeds = assert_problem(client.post("/v1/generate", json={"seeds": [-1], "note": '["\\"' * 40}), 400, "invalid-field")
    assert "seeds" in seeds["detail"] and "nested" not in seeds["detail"]


def test_invalid_utf8_and_invalid_json_are_named_as_such(client):
    bad_utf8 = assert_problem(client.post("/v1/generate", data=b'{"seeds": "\xff\xfe"}', content_type="application/json"),
                        400, "invalid-field")
    assert "UTF-8" in bad_utf8["detail"]
    bad_json = assert_problem(client.post("/v1/generate", data=b'{"seeds": [1,}', content_type="application/json"), 400,
                        "invalid-field")
    assert "not valid JSON" in bad_json["detail"]
    missing = assert_problem(client.post("/v1/generate", data=b"", content_type="application/json"), 400, "missing-field")
    assert "JSON object" in missing["detail"]


@pytest.mark.parametrize("resolution", [5, 12, 1000])
def test_style_mix_resolution_must_be_a_power_of_two(client, resolution):
    body = assert_problem(client.post("/v1/style-mix", json={"row_seeds": [1], "col_seeds": [2], "resolution": resolution}),
                    400, "invalid-field")
    assert body["field"] == "resolution" and "power of two" in body["detail"]


def test_oversized_form_names_the_image_limit(client):
    body = assert_problem(client.post("/v1/emotion", data={"image": (io.BytesIO(b"x" * (26 * 2 ** 20)), "a.jpg")},
                                content_type="multipart/form-data"), 413, "too-many-bytes")
    assert body["limit"] == 25 * 2 ** 20 and "25 MiB" in body["detail"] and "FACEFORGE_MAX_BYTES" in body["detail"]
