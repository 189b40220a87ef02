"""Keys created before ApiKeyManager used "<prefix>.<hashed key>" as their id; make it the prefix alone, in the
key table and in its history, so no copy of the hash is left outside the hashed_key column."""

from django.db import migrations
from django.db.models import F


def forwards(apps, schema_editor):
    ApiKey = apps.get_model("accounts", "ApiKey")
    HistoricalApiKey = apps.get_model("accounts", "HistoricalApiKey")
    # Nothing references accounts_apikey by foreign key, so the primary key can be rewritten in place.
    ApiKey.objects.exclude(id=F("prefix")).update(id=F("prefix"))
    HistoricalApiKey.objects.exclude(id=F("prefix")).update(id=F("prefix"))


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_initial")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
