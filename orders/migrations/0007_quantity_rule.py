"""filled_quantity + remaining_quantity = quantity, as a CHECK constraint on PostgreSQL only: SQLite evaluates
CHECK expressions on decimal columns in floating point, where 0.15 - 0.1 is not 0.05."""

from django.db import migrations

FORWARD = """
ALTER TABLE orders_order ADD CONSTRAINT order_filled_plus_remaining_is_quantity
    CHECK (quantity IS NULL OR remaining_quantity = quantity - filled_quantity);
"""
BACKWARD = "ALTER TABLE orders_order DROP CONSTRAINT IF EXISTS order_filled_plus_remaining_is_quantity;"


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("orders", "0006_order_book")]

    operations = [migrations.RunPython(forward, backward)]
