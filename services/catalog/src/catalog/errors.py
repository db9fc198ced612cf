"""Catalog's errors.

chassis.errors.NotFoundError
└── ProductNotFoundError     no product with that id or sku
chassis.errors.ConflictError
└── DuplicateSkuError        another product already has that sku
"""

from chassis.errors import ConflictError, NotFoundError

__all__ = ["DuplicateSkuError", "ProductNotFoundError"]


class ProductNotFoundError(NotFoundError):
    title = "Product not found"
    slug = "product-not-found"


class DuplicateSkuError(ConflictError):
    title = "Duplicate SKU"
    slug = "duplicate-sku"
