import pytest

from chassis.errors import ConfigurationError
from gateway.openapi import merge
from gateway.routing import SERVICE_ROUTES, Route, RouteTable, parse_static_routes


def test_longest_prefix_on_segment_boundaries() -> None:
    table = RouteTable(
        (Route("/api/v1/products", "catalog"), Route("/api/v1/products/special", "other"))
    )
    assert table.match("/api/v1/products") == Route("/api/v1/products", "catalog")
    assert table.match("/api/v1/products/123") == Route("/api/v1/products", "catalog")
    assert table.match("/api/v1/products/special/1").service == "other"  # type: ignore[union-attr]
    assert table.match("/api/v1/productsX") is None
    assert table.match("/") is None


def test_public_table_maps_the_design_prefixes() -> None:
    table = RouteTable(SERVICE_ROUTES)
    assert table.match("/api/v1/auth/token").service == "identity"  # type: ignore[union-attr]
    assert table.match("/api/v1/users/me").service == "identity"  # type: ignore[union-attr]
    assert table.match("/api/v1/categories").service == "catalog"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "path",
    ["/api/v1/orders/../../internal/audit/orders", "/api/v1/orders/..", "/api/v1/orders/./1",
     "/api/v1/orders/1\n2", "/api/v1/orders/\t", "/api/v1/orders/1\x00"],
)  # fmt: skip
def test_paths_the_upstream_would_see_differently_match_no_route(path: str) -> None:
    # dot segments are resolved and line breaks dropped on the way upstream
    assert RouteTable(SERVICE_ROUTES).match(path) is None


def test_dots_inside_a_segment_are_plain_names() -> None:
    table = RouteTable(SERVICE_ROUTES)
    for path in ("/api/v1/orders/a..b", "/api/v1/orders/...", "/api/v1/products/.well"):
        assert table.match(path) is not None, path


def test_static_routes_parse_and_reject_garbage() -> None:
    (route,) = parse_static_routes("/legacy/=http://127.0.0.1:9000/")
    assert route == Route("/legacy", "upstream-legacy", "http://127.0.0.1:9000")
    for bad in ["legacy=http://x", "/x=ftp://y", "/x"]:
        with pytest.raises(ConfigurationError):
            parse_static_routes(bad)


def test_openapi_merge_keeps_public_paths_and_renames_clashing_schemas() -> None:
    routes = RouteTable(SERVICE_ROUTES)
    catalog = {"paths": {"/api/v1/products": {"get": {"$ref": "#/components/schemas/Page"}},
                         "/internal": {}},
               "components": {"schemas": {"Page": {"title": "catalog page"}}}}  # fmt: skip
    identity = {"paths": {"/api/v1/auth/token": {"post": {"$ref": "#/components/schemas/Page"}}},
                "components": {"schemas": {"Page": {"title": "identity page"}}}}  # fmt: skip
    merged = merge({"catalog": catalog, "identity": identity}, routes, version="1")
    assert sorted(merged["paths"]) == ["/api/v1/auth/token", "/api/v1/products"]
    assert merged["components"]["schemas"]["Page"] == {"title": "catalog page"}
    assert merged["components"]["schemas"]["Identity_Page"] == {"title": "identity page"}
    assert (
        merged["paths"]["/api/v1/auth/token"]["post"]["$ref"]
        == "#/components/schemas/Identity_Page"
    )


def test_openapi_merge_asks_for_the_bearer_token_where_a_service_guards() -> None:
    # Services document their guards with the internal principal header, which clients never
    # send: publicly the same operations need the bearer token the gateway verifies.
    guarded = {"get": {"security": [{"internalPrincipal": []}], "responses": {}},
               "post": {"responses": {}}}  # fmt: skip
    orders = {"paths": {"/api/v1/orders": guarded}, "components": {
        "securitySchemes": {"internalPrincipal": {"type": "apiKey", "in": "header",
                                                  "name": "x-mercato-principal"}}}}  # fmt: skip
    merged = merge({"orders": orders}, RouteTable(SERVICE_ROUTES), version="1")
    item = merged["paths"]["/api/v1/orders"]
    assert item["get"]["security"] == [{"bearer": []}]
    assert "security" not in item["post"]
    assert set(merged["components"]["securitySchemes"]) == {"bearer"}
