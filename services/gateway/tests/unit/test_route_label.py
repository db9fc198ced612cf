"""The gateway's `route` label: bounded, and fine enough to tell placing an order apart."""

from gateway.routing import SERVICE_ROUTES, Route, RouteTable, route_label


def label(path: str, table: RouteTable = RouteTable(SERVICE_ROUTES)) -> str:
    return route_label(table.match(path), path)


def test_the_collection_keeps_its_prefix_and_anything_below_it_is_one_label() -> None:
    assert label("/api/v1/orders") == "/api/v1/orders"
    assert label("/api/v1/orders/") == "/api/v1/orders"
    assert label("/api/v1/orders/0b1f6c1e-aaaa") == "/api/v1/orders/*"
    assert label("/api/v1/orders/0b1f6c1e-aaaa/cancel") == "/api/v1/orders/*"
    assert label("/api/v1/auth/token") == "/api/v1/auth/*"


def test_paths_off_the_table_share_one_label() -> None:
    assert label("/wp-admin/setup.php") == "<unmatched>"
    assert label("/api/v1/ordersX") == "<unmatched>"


def test_a_root_prefix_labels_its_subpaths_without_a_double_slash() -> None:
    root = Route("/", "upstream-root", "http://127.0.0.1:9")
    assert route_label(root, "/") == "/"
    assert route_label(root, "/legacy/page") == "/*"


def test_labels_are_bounded_whatever_the_paths() -> None:
    paths = [f"/api/v1/products/{n}/{'x' * n}" for n in range(500)]
    assert {label(path) for path in paths} == {"/api/v1/products/*"}
