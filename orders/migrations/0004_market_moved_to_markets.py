# The Market model now lives in the markets app (markets/migrations/0001): point the foreign keys there and drop
# the model from this app's state. No table changes.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0003_market_initial_history'),
        ('markets', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='order',
                    name='market',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='orders', to='markets.market'),
                ),
                migrations.AlterField(
                    model_name='historicalorder',
                    name='market',
                    field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='markets.market'),
                ),
                migrations.AlterField(
                    model_name='trade',
                    name='market',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='trades', to='markets.market'),
                ),
                migrations.DeleteModel(name='HistoricalMarket'),
                migrations.DeleteModel(name='Market'),
            ],
        ),
    ]
