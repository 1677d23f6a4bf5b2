"""An unexpected error answers as the caller reads errors: JSON under /api/, our page elsewhere."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import path

from portal import urls as portal_urls


def crash(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug")


urlpatterns = [path("api/v1/crash/", crash), path("crash/", crash), *portal_urls.urlpatterns]
handler500 = portal_urls.handler500


@override_settings(ROOT_URLCONF=__name__)
def test_a_crash_under_the_api_answers_json_in_the_error_shape(db: None) -> None:
    response = Client(raise_request_exception=False).get("/api/v1/crash/")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert set(response.json()) == {"detail"}
    assert "a bug" not in response.content.decode()  # nothing of the exception leaks


@override_settings(ROOT_URLCONF=__name__)
def test_a_crash_on_a_page_answers_our_page(db: None) -> None:
    response = Client(raise_request_exception=False).get("/crash/")
    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")
    assert "a bug" not in response.content.decode()
