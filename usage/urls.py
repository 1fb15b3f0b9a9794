from django.urls import path

from usage import views

app_name = "usage"

urlpatterns = [
    path("", views.UsageHistoryView.as_view(), name="history"),
    path("export.csv", views.UsageExportView.as_view(), name="export"),
]
