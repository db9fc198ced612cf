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
