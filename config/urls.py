from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from config.api import api
from credits import controls_views
from credits import views as credits_views
from offices import views as offices_views
from usage import statement_views
from usage import views as usage_views

# The portal's pages, from each app that owns them, under one namespace.
portal = (
    [
        path("", offices_views.HomeView.as_view(), name="home"),
        path("balance/", credits_views.BalanceView.as_view(), name="balance"),
        path("balance/activity/", credits_views.ActivityView.as_view(), name="activity"),
        path(
            "balance/activity.csv",
            credits_views.ActivityExportView.as_view(),
            name="activity_export",
        ),
        path("balance/controls/", controls_views.ControlsView.as_view(), name="controls"),
        path("credits/add/", credits_views.AddCreditsView.as_view(), name="add_credits"),
        path("offices/<slug:slug>/", usage_views.OfficeDetailView.as_view(), name="office"),
        path("statements/", statement_views.StatementPickView.as_view(), name="statement_pick"),
        path(
            "statements/months/",
            statement_views.StatementListView.as_view(),
            name="statement_list",
        ),
        path(
            "statements/<str:period>/",
            statement_views.StatementView.as_view(),
            name="statement",
        ),
        path(
            "statements/<str:period>/statement.csv",
            statement_views.StatementCsvView.as_view(),
            name="statement_csv",
        ),
        path(
            "statements/<str:period>/statement.pdf",
            statement_views.StatementPdfView.as_view(),
            name="statement_pdf",
        ),
        path("what-if/<str:period>/", statement_views.WhatIfView.as_view(), name="whatif"),
    ],
    "portal",
)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    # No password reset by e-mail: the portal sends no mail; customer care resets passwords.
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password_change/",
        auth_views.PasswordChangeView.as_view(),
        name="password_change",
    ),
    path(
        "accounts/password_change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("usage/", include("usage.urls")),
    path("", include(portal)),
]
