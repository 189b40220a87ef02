from django.db import migrations


def create_markets(apps, schema_editor):
    from markets.reference_data import ensure_reference_data

    ensure_reference_data(apps, "orders")


class Migration(migrations.Migration):
    dependencies = [("orders", "0001_initial"), ("ledger", "0002_reference_data")]

    operations = [migrations.RunPython(create_markets, migrations.RunPython.noop)]
