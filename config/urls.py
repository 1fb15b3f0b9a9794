from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from config.api import api
from credits import controls_views
from credits import views as credits_views
from credits.requests import views as request_views
from offices import views as offices_views
from offices.team import password_reset
from offices.team import views as team_views
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
        path(
            "credits/requests/",
            request_views.CreditRequestListView.as_view(),
            name="credit_requests",
        ),
        path(
            "credits/requests/new/",
            request_views.CreditRequestCreateView.as_view(),
            name="credit_request_new",
        ),
        path(
            "credits/requests/<int:pk>/",
            request_views.CreditRequestDetailView.as_view(),
            name="credit_request",
        ),
        path(
            "credits/requests/<int:pk>/decide/",
            request_views.CreditRequestDecideView.as_view(),
            name="credit_request_decide",
        ),
        path("team/", team_views.TeamView.as_view(), name="team"),
        path("team/invite/", team_views.InviteCreateView.as_view(), name="team_invite"),
        path(
            "team/invites/<int:pk>/resend/",
            team_views.InviteResendView.as_view(),
            name="team_invite_resend",
        ),
        path(
            "team/invites/<int:pk>/revoke/",
            team_views.InviteRevokeView.as_view(),
            name="team_invite_revoke",
        ),
        path("team/people/<int:user_id>/", team_views.MemberView.as_view(), name="team_member"),
        path(
            "team/people/<int:user_id>/remove/",
            team_views.MemberRemoveView.as_view(),
            name="team_member_remove",
        ),
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
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    # Password reset by e-mail (SPEC §11): mail through the task queue, rate limited.
    path(
        "accounts/password_reset/",
        password_reset.PasswordResetView.as_view(),
        name="password_reset",
    ),
    path(
        "accounts/password_reset/done/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "accounts/reset/<uidb64>/<token>/",
        password_reset.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "accounts/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path(
        "accounts/invite/<str:token>/", team_views.InviteAcceptView.as_view(), name="invite_accept"
    ),
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
