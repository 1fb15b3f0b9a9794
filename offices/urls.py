from django.urls import path

from credits import views as credit_views
from offices import views

app_name = "portal"

urlpatterns = [
    path("", views.HomeView.as_view(), name="home"),
    path("balance/", credit_views.BalanceView.as_view(), name="balance"),
    path("credits/add/", credit_views.AddCreditsView.as_view(), name="add_credits"),
    path("offices/<slug:slug>/", views.OfficeDetailView.as_view(), name="office"),
]
