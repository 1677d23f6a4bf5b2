from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponseRedirect
from django.templatetags.static import static
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from fleet.ingest.view import heartbeats as ingest_heartbeats
from portal import accounts, health, onboarding, views, views_billing


def favicon(request: HttpRequest) -> HttpResponseRedirect:
    """Browsers ask for /favicon.ico on pages that name no icon (the Django admin's): ours."""
    return HttpResponseRedirect(static("img/fleetport.svg"))


handler400 = "portal.errors.bad_request"
handler403 = "portal.views.error_403"
handler404 = "portal.views.error_404"
handler500 = "portal.errors.server_error"

accounts_patterns = [
    path("login/", accounts.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/", accounts.PasswordChangeView.as_view(), name="password_change"),
    path(
        "password/done/",
        auth_views.PasswordChangeDoneView.as_view(template_name="registration/password_change_done.html"),
        name="password_change_done",
    ),
    path("password/reset/", accounts.PasswordResetView.as_view(), name="password_reset"),
    path(
        "password/reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="registration/password_reset_sent.html"),
        name="password_reset_done",
    ),
    path(
        "reset/<uidb64>/<token>/", accounts.PasswordResetConfirmView.as_view(), name="password_reset_confirm"
    ),
    path(
        "reset/done/",
        auth_views.PasswordResetCompleteView.as_view(template_name="registration/password_set_done.html"),
        name="password_reset_complete",
    ),
    path("profile/", views.profile, name="profile"),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", health.healthz, name="healthz"),
    path("favicon.ico", favicon),
    path("readyz", health.readyz, name="readyz"),
    path("accounts/", include(accounts_patterns)),
    path("customers/", views.customer_list, name="customer_list"),
    path("customers/onboard/", onboarding.onboard_customer, name="onboard_customer"),
    path("customers/<uuid:pk>/", views.customer_detail, name="customer_detail"),
    path("customers/<uuid:pk>/onboard/invite/", onboarding.onboard_invite, name="onboard_invite"),
    path("customers/<uuid:pk>/billing/", views_billing.customer_billing, name="customer_billing"),
    path("users/", views.user_list, name="user_list"),
    path("users/invite/", views.user_invite, name="user_invite"),
    path("users/<uuid:pk>/", views.user_detail, name="user_detail"),
    path("users/<uuid:pk>/role/", views.user_change_role, name="user_change_role"),
    path("users/<uuid:pk>/active/", views.user_set_active, name="user_set_active"),
    path("activity/", views.activity, name="activity"),
    path("", include("fleet.urls")),
    path("", include("billing.urls")),
    path("", include("support.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/ingest/heartbeats", ingest_heartbeats, name="ingest-heartbeats"),
    path("api/v1/", include("portal.api.urls")),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file: no inline script (docs/security.md).
    path("api/v1/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
]

if settings.DEBUG:
    from django.views import defaults

    urlpatterns += [
        path("_errors/403/", defaults.permission_denied, {"exception": Exception()}),
        path("_errors/404/", defaults.page_not_found, {"exception": Exception()}),
    ]
