import re

from django.contrib.staticfiles import finders
from django.test import Client
from openapi_spec_validator import validate


def test_the_openapi_schema_is_served_without_a_key_and_is_valid():
    response = Client().get("/api/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    validate(schema)
    paths = schema["paths"]
    assert set(paths) == {"/api/v1/usage-events", "/api/v1/balance", "/api/v1/alerts"}
    assert set(paths["/api/v1/usage-events"]) == {"get", "post"}
    post = paths["/api/v1/usage-events"]["post"]
    assert {"200", "400", "401", "413", "415", "422"} <= set(post["responses"])
    assert post["security"] == [{"ApiKeyAuth": []}]
    assert schema["components"]["securitySchemes"]["ApiKeyAuth"] == {
        "type": "http",
        "scheme": "bearer",
    }
    event = schema["components"]["schemas"]["UsageEvent"]
    assert event["additionalProperties"] is False
    assert set(event["required"]) == {"id", "office", "service", "quantity", "occurred_at"}


def test_the_docs_page_loads_its_assets_from_the_portal_not_a_cdn():
    response = Client().get("/api/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    for asset in assets:
        assert asset.startswith("/static/"), asset
        assert finders.find(asset.removeprefix("/static/")), asset
    assert "<script>" not in html  # no inline script: the CSP allows only 'self'
