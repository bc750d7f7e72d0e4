"""The job API's pydantic request models (server/request_models.py): one source for validation and the
OpenAPI request schemas; multipart strings and JSON values validate alike; errors name their field."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from faceforge.errors import InvalidFieldError, MissingFieldError
from server import request_models as rm
from server import schemas

LIMITS = rm.Limits(max_images=4, max_steps=300, attributes=("age", "smile"))


def _validate(task, fields, uploads=None, limits=LIMITS):
    model = rm.MODELS[task]
    given = {name: None for name in model.uploads}
    given.update(uploads or {})
    return rm.validate_job_request(task, fields, given, limits)


def test_every_task_has_a_model_and_the_document_comes_from_it():
    assert set(rm.MODELS) == set(schemas.JOB_TASKS)
    docs = schemas.job_request_schemas(123)
    for task, model in rm.MODELS.items():
        schema = docs[task]
        Draft202012Validator.check_schema(schema)
        assert set(schema["properties"]) == set(model.model_fields), task
        assert "title" not in str(schema) and "anyOf" not in str(schema), task  # the API's style
        for name in model.uploads:
            assert schema["properties"][name]["contentMediaType"] == "application/octet-stream"
        if "steps" in schema["properties"]:
            assert schema["properties"]["steps"]["maximum"] == 123 and schema["properties"]["steps"]["default"] == 200
    assert docs["swap"]["required"] == ["source", "target"] and docs["edit"]["required"] == ["attribute"]
    assert docs["style-mix"]["properties"]["crossover"] == {
        "type": "integer", "minimum": 0, "maximum": 64,
        "description": "layers [0, crossover) come from the column seed (default: up to 8x8)"}
    docs["generate"]["properties"].clear()  # a copy: the next caller gets the full document
    assert schemas.job_request_schemas(123)["generate"]["properties"]


def test_multipart_strings_and_json_values_give_the_same_payload():
    json_body = {"seeds": [1, 2], "psi": 0.5, "align": False, "steps": 7, "swap_resolution": 8}
    form = {"seeds": "1, 2", "psi": "0.5", "align": "no", "steps": "7", "swap_resolution": "8"}
    assert _validate("toonify", json_body) == _validate("toonify", form) == {
        "seeds": [1, 2], "image": None, "steps": 7, "id_weight": None, "align": False, "psi": 0.5, "output": "image",
        "emoji_size": 256, "swap_resolution": 8, "structure_from": "finetuned"}
    edit = {"seeds": "3", "attribute": "age", "strengths": "-1,1", "condition": "smile", "w_plus": "TRUE"}
    assert _validate("edit", edit) == {"seeds": [3], "image": None, "steps": 200, "id_weight": None, "align": True,
                                       "w_plus": True,
                                       "psi": 1.0, "attribute": "age", "strengths": [-1.0, 1.0],
                                       "condition": ["smile"]}
    # absent, null and "" are all "not given"; the steps default follows the configured maximum
    assert _validate("project", {"steps": ""}, {"image": b"png"}, rm.Limits(max_steps=50))["steps"] == 50
    assert _validate("morph", {"seeds": [1, 2], "t": 0.5, "mode": None}) == {
        "mode": "latent", "t": [0.5], "psi": 1.0, "steps": 200, "align": True, "id_weight": None, "seeds": [1, 2],
        "images": None}


@pytest.mark.parametrize("task, fields, uploads, error, field, words", [
    ("generate", {}, None, MissingFieldError, "seeds", "is missing"),
    ("generate", {"seeds": [True]}, None, InvalidFieldError, "seeds", "list of integers"),
    ("generate", {"seeds": [-1]}, None, InvalidFieldError, "seeds", "[0, 4294967295]"),
    ("generate", {"seeds": [1, 2, 3, 4, 5]}, None, InvalidFieldError, "seeds", "at most 4 seeds"),
    ("generate", {"seeds": [1], "psi": "nan"}, None, InvalidFieldError, "psi", "[-1.0, 2.0]"),
    ("generate", {"seeds": [1], "output": "gif"}, None, InvalidFieldError, "output", "one of image, emoji"),
    ("generate", {"seeds": [1], "emoji_size": "2000"}, None, InvalidFieldError, "emoji_size", "[16, 1024]"),
    ("style-mix", {"row_seeds": [1], "col_seeds": [2], "resolution": 12}, None, InvalidFieldError, "resolution",
     "power of two"),
    ("style-mix", {"row_seeds": [1, 2, 3, 4], "col_seeds": [1, 2, 3, 4]}, None, InvalidFieldError, "row_seeds",
     "16 tiles"),
    ("toonify", {"seeds": [1], "steps": 301}, None, InvalidFieldError, "steps", "[1, 300]"),
    ("toonify", {"seeds": [1], "align": "maybe"}, None, InvalidFieldError, "align", "true or false"),
    ("edit", {"seeds": [1]}, None, MissingFieldError, "attribute", "(age, smile)"),
    ("edit", {"seeds": [1], "attribute": "gender"}, None, InvalidFieldError, "attribute", "one of age, smile"),
    ("edit", {"seeds": [1], "attribute": "age", "condition": ["age"]}, None, InvalidFieldError, "condition", ""),
    ("swap", {"faces": "x"}, {"source": b"a", "target": b"b"}, InvalidFieldError, "faces", "comma-separated"),
    ("swap", {"max_yaw_gap": "0"}, {"source": b"a", "target": b"b"}, InvalidFieldError, "max_yaw_gap", "(0.0, 90.0]"),
    ("makeup", {"regions": "nose"}, {"target": b"a", "reference": b"b"}, InvalidFieldError, "regions",
     "lips, eyes, skin"),
    ("restore", {"upscale": "5"}, {"image": b"a"}, InvalidFieldError, "upscale", "[1, 4]"),
    ("virtual-model", {}, {"image": b"a"}, MissingFieldError, "source", "source_seed"),
    ("morph", {"seeds": [1, 2, 3], "t": [0, 1]}, None, InvalidFieldError, "seeds", "exactly two"),
    ("morph", {"mode": "delaunay", "t": [0, 1]}, {"image_a": b"a"}, MissingFieldError, "image_b", "image_b"),
    ("morph", {"seeds": [1, 2]}, None, InvalidFieldError, "t", "at most 4 frames"),
])
def test_errors_name_their_field(task, fields, uploads, error, field, words):
    with pytest.raises(error) as info:
        _validate(task, fields, uploads)
    assert info.type is error and info.value.extra["field"] == field and words in info.value.detail, info.value.detail


def test_the_document_and_the_validator_agree_on_json_bodies():
    """A JSON body the document's schema refuses is refused by the validator, and one it accepts is
    accepted (limits that depend on the configuration are left out: seed counts, matrix size)."""
    docs = schemas.job_request_schemas(LIMITS.max_steps)
    cases = [("generate", {"seeds": [1]}), ("generate", {"seeds": []}), ("generate", {"seeds": [1], "psi": 2.5}),
             ("generate", {"seeds": [1], "output": "emoji"}), ("style-mix", {"row_seeds": [1], "col_seeds": [2],
                                                                            "resolution": 8}),
             ("style-mix", {"row_seeds": [1], "col_seeds": [2], "resolution": 12}),
             ("style-mix", {"row_seeds": [1], "col_seeds": [2], "crossover": 65}),
             ("toonify", {"seeds": [1], "steps": 300}), ("toonify", {"seeds": [1], "steps": 301}),
             ("toonify", {"seeds": [1], "structure_from": "x"}), ("morph", {"seeds": [1, 2], "t": [0, 1]}),
             ("morph", {"seeds": [1, 2], "t": [0, 1.5]}), ("edit", {"seeds": [1], "attribute": "age"}),
             ("edit", {"seeds": [1], "attribute": "age", "strengths": [11]})]
    for task, body in cases:
        by_schema = Draft202012Validator(docs[task]).is_valid(body)
        try:
            _validate(task, body)
            by_model = True
        except (InvalidFieldError, MissingFieldError):
            by_model = False
        assert by_schema == by_model, (task, body, by_schema)


def test_synchronous_forms_fold_case_and_name_their_field():
    limits = rm.Limits(max_faces=3)
    form = rm.validate_form("translate", {"direction": " b->a ", "format": "JPG", "postfilter": "On", "faces": "0,2",
                                          "response": "", "task": " age "}, limits)
    assert (form.direction, form.format, form.postfilter, form.faces, form.response, form.task) == (
        "B->A", "jpeg", True, (0, 2), "image", "age")
    assert rm.validate_form("emotion", {}, limits).max_faces == 3
    for endpoint, fields, field, words, valid in [
            ("translate", {"format": "gif"}, "format", "one of png, jpeg", ["png", "jpeg"]),
            ("translate", {"faces": "0,1,2,3"}, "faces", "at most 3 faces", None),
            ("translate", {"postfilter": "maybe"}, "postfilter", "true or false", None),
            ("frontalize", {"response": "xml"}, "response", "got 'xml'", ["image", "json"]),
            ("emotion", {"max_faces": "0"}, "max_faces", "[1, 3]", None),
            ("emotion", {"max_faces": "4"}, "max_faces", "[1, 3]", None)]:
        with pytest.raises(InvalidFieldError) as info:
            rm.validate_form(endpoint, fields, limits)
        problem = info.value.to_problem()
        assert problem["field"] == field and words in problem["detail"] and problem.get("valid") == valid, problem


def test_the_documented_forms_are_the_models_fields():
    """The OpenAPI document's multipart fields of the synchronous endpoints are the form models' fields
    (plus the image file), with the same fixed values."""
    from server import create_app

    doc = create_app({"torch_threads": None}).test_client().get(schemas.OPENAPI_PATH).get_json()
    forms = rm.form_schemas()
    for endpoint, path in (("emotion", schemas.EMOTION_PATH), ("translate", schemas.TRANSLATE_PATH),
                           ("frontalize", schemas.FRONTALIZE_PATH)):
        documented = doc["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
        assert set(documented) == set(forms[endpoint]["properties"]) | {schemas.IMAGE_FIELD}, endpoint
        for name, prop in forms[endpoint]["properties"].items():
            if "enum" in prop and name != "task":
                assert sorted(documented[name]["enum"]) == sorted(prop["enum"]), (endpoint, name)


def test_job_enum_errors_list_the_valid_values():
    with pytest.raises(InvalidFieldError) as info:
        _validate("swap", {"blend": "clone"}, {"source": b"a", "target": b"b"})
    assert info.value.to_problem()["valid"] == ["laplacian", "poisson", "feather"]
    with pytest.raises(InvalidFieldError) as info:
        _validate("generate", {"seeds": [1], "psi": 3})
    assert "valid" not in info.value.to_problem()  # a range, not a set of values
