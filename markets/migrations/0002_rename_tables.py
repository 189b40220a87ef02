# The tables of the moved models get this app's names; admin permissions follow the model to its new app.

from django.db import migrations


def move_content_types(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in ("market", "historicalmarket"):
        if not ContentType.objects.filter(app_label="markets", model=model).exists():
            ContentType.objects.filter(app_label="orders", model=model).update(app_label="markets")


class Migration(migrations.Migration):

    dependencies = [
        ('markets', '0001_initial'),
        ('orders', '0004_market_moved_to_markets'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.AlterModelTable(name='market', table=None),
        migrations.AlterModelTable(name='historicalmarket', table=None),
        migrations.RunPython(move_content_types, migrations.RunPython.noop),
    ]
