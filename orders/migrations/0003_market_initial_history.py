from django.db import migrations


def backfill(apps, schema_editor):
    # Databases migrated before the markets' data migration wrote a first history version get it here.
    from markets.reference_data import ensure_initial_history

    ensure_initial_history(apps, "orders")


class Migration(migrations.Migration):
    dependencies = [("orders", "0002_markets")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
