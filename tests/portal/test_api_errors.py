"""Every API error has one shape (docs/api.md#conventions): `detail`, and on a 400 `errors`."""

from __future__ import annotations

from rest_framework.exceptions import ErrorDetail

from portal.api.exceptions import error_body
from portal.models import Customer, User
from tests.conftest import client_for


def test_nested_field_errors_become_dotted_paths() -> None:
    data = {
        "name": [ErrorDetail("This field is required.", code="required")],
        "metrics": [{}, {"code": [ErrorDetail("Duplicate code.", code="invalid")]}],
        "non_field_errors": [ErrorDetail("Pick one.", code="invalid")],
    }

    body = error_body(data, validation=True)

    assert body == {
        "detail": "name: This field is required. metrics.1.code: Duplicate code. Pick one.",
        "errors": [
            {"field": "name", "message": "This field is required."},
            {"field": "metrics.1.code", "message": "Duplicate code."},
            {"field": None, "message": "Pick one."},
        ],
    }


def test_django_model_wide_errors_are_about_the_request_as_a_whole() -> None:
    assert error_body({"__all__": ["Taken."]}, validation=True)["errors"] == [
        {"field": None, "message": "Taken."}
    ]


def test_a_body_that_is_no_json_is_a_400_in_the_same_shape(operator: User) -> None:
    response = client_for(operator).post("/api/v1/sites/", "{nope", content_type="application/json")

    assert response.status_code == 400
    body = response.json()
    assert body["detail"].startswith("JSON parse error")
    assert body["errors"] == [{"field": None, "message": body["detail"]}]


def test_other_errors_carry_detail_only(viewer_a: User, operator: User) -> None:
    client = client_for(viewer_a)

    missing = client.get("/api/v1/sites/00000000-0000-0000-0000-000000000000/")
    refused = client.post("/api/v1/sites/", {}, content_type="application/json")

    assert (missing.status_code, missing.json()) == (404, {"detail": "No Site matches the given query."})
    assert (refused.status_code, refused.json()) == (403, {"detail": "Your role does not allow this."})


def test_a_service_check_answers_400_with_the_field(operator: User, customer_a: Customer) -> None:
    client = client_for(operator)
    body = {"customer": str(customer_a.pk), "name": "Main plant", "time_zone": "UTC"}
    assert client.post("/api/v1/sites/", body, content_type="application/json").status_code == 201

    again = client.post("/api/v1/sites/", body, content_type="application/json")

    assert again.status_code == 400
    assert again.json()["errors"][0]["field"] in (None, "name")


def test_a_request_django_refuses_before_the_view_is_a_400_in_the_same_shape(operator: User) -> None:
    """More form fields than DATA_UPLOAD_MAX_NUMBER_FIELDS: Django refuses the body before DRF
    sees it (the fuzz run found its HTML page); the API still answers JSON."""
    fields = {f"field{i}": "x" for i in range(1100)}

    response = client_for(operator).post("/api/v1/maintenance-windows/", fields)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["detail"].startswith("The request could not be read")
    assert body["errors"] == [{"field": None, "message": body["detail"]}]
    page = client_for(operator).post("/fleet/maintenance/new/", fields)
    assert page.status_code == 400
    assert page["Content-Type"].startswith("text/html")
