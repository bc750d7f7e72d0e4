"""API keys (configured as SHA-256 digests), per-key rate limits (flask-limiter; memory, and a real
Redis shared by two app instances as two web processes would), CORS, and ``faceforge serve
--new-api-key``."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from server import create_app, schemas
from server.access import hash_api_key, identify, new_api_key, parse_api_keys

KEY_A, KEY_B = "alpha-key-" + "a" * 30, "beta-key-" + "b" * 30
KEYS = f"alice:{hash_api_key(KEY_A)}, bob:{hash_api_key(KEY_B)}"
EMOTION = "/v1/emotion"


def test_key_configuration_is_digests_only():
    keys = parse_api_keys(KEYS)
    assert keys == {hash_api_key(KEY_A): "alice", hash_api_key(KEY_B): "bob"}
    assert identify(keys, KEY_B) == "bob" and identify(keys, "nope") is None and identify(keys, None) is None
    assert parse_api_keys(None) == {} and parse_api_keys(" , ") == {}
    for bad in (f"alice:{KEY_A}", "alice", f"al ice:{hash_api_key(KEY_A)}",
                f"alice:{hash_api_key(KEY_A)},alice:{hash_api_key(KEY_B)}"):
        with pytest.raises(ValueError, match="FACEFORGE_API_KEYS"):
            parse_api_keys(bad)
    key, entry = new_api_key("carol")
    assert len(key) >= 43 and parse_api_keys(entry) == {hash_api_key(key): "carol"} and key not in entry
    with pytest.raises(ValueError, match="API key name"):
        new_api_key("bad name")


def test_api_keys_guard_everything_but_probes_and_the_document(expect_problem):
    client = create_app({"api_keys": KEYS, "require_api_key": True}).test_client()
    for path in (schemas.HEALTH_PATH, schemas.OPENAPI_PATH):
        assert client.get(path).status_code == 200
    missing = expect_problem(client.post(EMOTION), 401, "unauthorized")
    assert "Authorization: Bearer" in missing["detail"]
    assert client.post(EMOTION).headers["WWW-Authenticate"].startswith("Bearer")
    expect_problem(client.post(EMOTION, headers={"Authorization": "Bearer wrong"}), 401, "unauthorized")
    expect_problem(client.get(f"{schemas.JOBS_PATH}/{'a' * 32}"), 401, "unauthorized")
    # a valid key gets through to the endpoint itself (which then wants its image)
    expect_problem(client.post(EMOTION, headers={"Authorization": f"Bearer {KEY_A}"}), 400, "missing-field")
    expect_problem(client.post(EMOTION, headers={"X-API-Key": KEY_B}), 400, "missing-field")
    with pytest.raises(ValueError, match="FACEFORGE_REQUIRE_API_KEY"):
        create_app({"require_api_key": True})
    open_client = create_app().test_client()  # the embedded default: no keys
    expect_problem(open_client.post(EMOTION), 400, "missing-field")


def test_rate_limit_per_key_with_retry_after(expect_problem):
    client = create_app({"api_keys": KEYS, "rate_limit": "3/minute"}).test_client()
    alice, bob = {"X-API-Key": KEY_A}, {"X-API-Key": KEY_B}
    assert [client.post(EMOTION, headers=alice).status_code for _ in range(3)] == [400, 400, 400]
    over = client.post(EMOTION, headers=alice)
    body = expect_problem(over, 429, "rate-limited")
    assert 1 <= int(over.headers["Retry-After"]) <= 60 and "alice" in body["detail"]
    assert client.post(EMOTION, headers=bob).status_code == 400  # bob has his own budget
    assert client.get(f"{schemas.JOBS_PATH}/{'a' * 32}", headers=alice).status_code == 404  # GETs not limited
    assert client.get(schemas.HEALTH_PATH).status_code == 200
    with pytest.raises(ValueError, match="FACEFORGE_RATE_LIMIT"):
        create_app({"rate_limit": "lots per hour"})


def test_rate_limit_is_shared_by_web_processes_through_redis(redis_server, redis_client, expect_problem):
    pytest.importorskip("flask_limiter")
    config = {"rate_limit": "3/minute", "job_backend": "celery", "redis_url": redis_server.url}
    first, second = create_app(config).test_client(), create_app(config).test_client()  # two "processes"
    codes = [client.post(EMOTION).status_code for client in (first, second, first)]
    assert codes == [400, 400, 400]
    expect_problem(second.post(EMOTION), 429, "rate-limited")
    assert any(b"faceforge-limits/addr:" in k for k in redis_client.keys("*"))  # the counter lives in Redis


def test_cors_policy_is_configurable():
    pytest.importorskip("flask_cors")
    client = create_app({"cors_origins": "https://app.example", "api_keys": KEYS}).test_client()
    preflight = client.options(EMOTION, headers={"Origin": "https://app.example",
                                                 "Access-Control-Request-Method": "POST",
                                                 "Access-Control-Request-Headers": "authorization"})
    assert preflight.status_code == 200  # no key needed for a preflight
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    answer = client.post(EMOTION, headers={"Origin": "https://app.example", "X-API-Key": KEY_A})
    assert answer.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Location" in answer.headers["Access-Control-Expose-Headers"]
    other = client.post(EMOTION, headers={"Origin": "https://evil.example", "X-API-Key": KEY_A})
    assert "Access-Control-Allow-Origin" not in other.headers
    assert "Access-Control-Allow-Origin" not in create_app().test_client().post(
        EMOTION, headers={"Origin": "https://app.example"}).headers  # unset: no CORS


def test_serve_prints_a_new_key_that_the_server_accepts(expect_problem):
    from server.cli import serve

    result = CliRunner().invoke(serve, ["--new-api-key", "dave"])
    assert result.exit_code == 0, result.output
    key = result.output.split("stored anywhere): ")[1].split()[0]
    entry = result.output.split("several): ")[1].split()[0]
    assert entry == f"dave:{hash_api_key(key)}"
    client = create_app({"api_keys": entry}).test_client()
    expect_problem(client.post(EMOTION, headers={"Authorization": f"Bearer {key}"}), 400, "missing-field")


def test_openapi_documents_keys_limits_and_busy():
    validator = pytest.importorskip("openapi_spec_validator")
    plain = create_app().test_client().get(schemas.OPENAPI_PATH).get_json()
    assert "security" not in plain and "securitySchemes" not in plain["components"]
    assert "401" not in plain["paths"][EMOTION]["post"]["responses"]
    assert "server-busy" in plain["paths"][EMOTION]["post"]["responses"]["503"]["description"]
    doc = create_app({"api_keys": KEYS, "rate_limit": "5/minute"}).test_client().get(
        schemas.OPENAPI_PATH, headers={"X-API-Key": KEY_A}).get_json()
    validator.validate(doc)
    assert doc["security"] == [{"bearer": []}, {"apiKey": []}] and "bearer" in doc["components"]["securitySchemes"]
    post = doc["paths"][EMOTION]["post"]["responses"]
    assert "401" in post and "429" in post
    assert "unauthorized" in post["401"]["content"]["application/problem+json"]["examples"]
    generate = doc["paths"]["/v1/generate"]["post"]["responses"]["429"]["content"]["application/problem+json"]
    assert {"queue-full", "rate-limited"} <= set(generate["examples"])  # merged into one 429 entry
    assert doc["paths"][schemas.HEALTH_PATH]["get"]["security"] == []
    assert "429" not in doc["paths"][f"{schemas.JOBS_PATH}/{{job_id}}"]["get"]["responses"]


def test_the_reference_page_is_public_but_its_api_calls_are_not(expect_problem):
    client = create_app({"api_keys": KEYS, "require_api_key": True}).test_client()
    for path in ("/app", "/app/", "/app/assets/manifest.json"):
        assert client.get(path).status_code != 401, path
    expect_problem(client.post("/v1/emotion"), 401, "unauthorized")
    assert client.get("/apple").status_code == 401  # only /app itself and what is under it
