"""Catalog's tables. Only catalog ever reads or writes them."""

from sqlalchemy import BigInteger, Column, ForeignKey, Index, MetaData, String, Table, Text

from chassis import UtcDateTime
from chassis.messaging import add_messaging_tables

metadata = MetaData()

categories = Table(
    "categories",
    metadata,
    Column("slug", String(50), primary_key=True),
    Column("name", String(100), nullable=False),
)

products = Table(
    "products",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("sku", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    # casefolded name: case-insensitive search and ordering that work alike on every database
    Column("name_key", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("category", String(50), ForeignKey("categories.slug"), nullable=False),
    Column("price_amount", BigInteger, nullable=False),
    Column("price_currency", String(3), nullable=False),
    Column("image_url", String(2048), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_products_category_name", "category", "name_key", "id"),
    Index("ix_products_name", "name_key", "id"),
    Index("ix_products_price", "price_amount", "id"),
    Index("ix_products_created", "created_at", "id"),
)

# The outbox (events committed with the change that caused them) and the inbox.
outbox, inbox = add_messaging_tables(metadata)
