"""The OpenAPI schema says what the API answers: nulls where it sends null, the error answers in
their one shape, plain lists and files as they are. tests/portal/test_api_fuzz.py checks the
answers themselves against it; these name each promise."""

from __future__ import annotations

from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return dict(SchemaGenerator().get_schema(request=None, public=True))


def _property(schema: dict[str, Any], component: str, name: str) -> dict[str, Any]:
    return dict(schema["components"]["schemas"][component]["properties"][name])


@pytest.mark.parametrize(
    ("component", "name"),
    [
        ("Alarm", "acknowledged_by"),
        ("Alarm", "cleared_by"),
        ("Ticket", "next_due"),
        ("Ticket", "asset_name"),
        ("Ticket", "invoice_number"),
        ("Ticket", "contract_number"),
        ("Ticket", "assignee_email"),
        ("User", "customer"),
        ("Me", "customer"),
    ],
)
def test_fields_the_api_sends_as_null_are_nullable(schema: dict[str, Any], component: str, name: str) -> None:
    field = _property(schema, component, name)

    assert field.get("nullable") is True or {"nullable": True} in field.get("allOf", []), field


def test_every_operation_documents_its_error_answers_in_the_one_shape(schema: dict[str, Any]) -> None:
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for code, component in [
                ("400", "ValidationError"),
                ("401", "Error"),
                ("403", "Error"),
                ("404", "Error"),
            ]:
                content = operation["responses"][code]["content"]["application/json"]
                assert content["schema"] == {"$ref": f"#/components/schemas/{component}"}, (
                    method,
                    path,
                    code,
                )
    error = schema["components"]["schemas"]["ValidationError"]
    assert error["required"] == ["detail", "errors"]
    assert error["properties"]["errors"]["items"]["properties"]["field"]["nullable"] is True


def test_an_invoices_credit_notes_are_a_plain_list(schema: dict[str, Any]) -> None:
    operations = schema["paths"]["/api/v1/invoices/{id}/credit-notes/"]

    listed = operations["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    issued = operations["post"]["responses"]

    assert listed == {"type": "array", "items": {"$ref": "#/components/schemas/CreditNote"}}
    assert "200" not in issued
    assert issued["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CreditNote"
    }


def test_files_are_described_as_the_types_they_are_served_as(schema: dict[str, Any]) -> None:
    paths = schema["paths"]
    for path in ("/api/v1/invoices/export.csv", "/api/v1/invoices/{id}/lines/{line_id}/usage.csv"):
        assert list(paths[path]["get"]["responses"]["200"]["content"]) == ["text/csv"], path
    download = paths["/api/v1/tickets/{id}/attachments/{attachment_id}/"]["get"]["responses"]["200"]
    assert set(download["content"]) == {
        "image/png",
        "image/jpeg",
        "application/pdf",
        "text/plain",
        "text/csv",
    }
    line_usage = paths["/api/v1/invoices/{id}/lines/{line_id}/usage/"]["get"]["responses"]["200"]
    assert line_usage["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/LineUsage"}


def test_a_plan_needs_its_currency(schema: dict[str, Any]) -> None:
    assert "currency" in schema["components"]["schemas"]["PlanRequest"]["required"]


def test_the_token_endpoint_documents_its_lockout(schema: dict[str, Any]) -> None:
    locked = schema["paths"]["/api/v1/auth/token/"]["post"]["responses"]["429"]

    assert locked["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert schema["components"]["schemas"]["Error"]["required"] == ["detail"]
