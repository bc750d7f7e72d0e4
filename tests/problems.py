"""The one check of an RFC 9457 problem answer that the server tests share (tests/ is on sys.path)."""

from __future__ import annotations

from jsonschema import Draft202012Validator

from faceforge.errors import PROBLEM_TYPE_PREFIX
from server import schemas

PROBLEM_MEDIA_TYPE = "application/problem+json"


def assert_problem(response, status: int, slug: str) -> dict:
    """Assert that a Flask test ``response`` is the problem ``slug`` with HTTP ``status``: media type
    ``application/problem+json``, a body valid against :func:`server.schemas.problem_schema`, ``type``
    ``urn:faceforge:problem:<slug>``, the same ``status``, a ``title`` and a ``detail``, and ``instance``
    the request's path (RFC 9457 section 3.1). Returns the JSON body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_MEDIA_TYPE
    body = response.get_json(force=True)
    Draft202012Validator(schemas.problem_schema()).validate(body)
    assert body["type"] == PROBLEM_TYPE_PREFIX + slug
    assert body["status"] == status
    assert body["title"] and body["detail"]
    assert body["instance"] == response.request.path
    return body
