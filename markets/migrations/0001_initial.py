# Moves the Market model (and its history) from the orders app to its own app without touching the tables:
# the tables are renamed in 0002. State only here (the recipe of Django's docs for moving a model between apps).

import django.db.models.deletion
import simple_history.models
from decimal import Decimal
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('orders', '0003_market_initial_history'),
        ('ledger', '0004_check_each_entry_once'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='HistoricalMarket',
                    fields=[
                        ('id', models.BigIntegerField(auto_created=True, blank=True, db_index=True, verbose_name='ID')),
                        ('symbol', models.CharField(db_index=True, max_length=20)),
                        ('quantity_step', models.DecimalField(decimal_places=18, help_text='Order quantities (base) must be a multiple of this.', max_digits=38)),
                        ('min_quantity', models.DecimalField(decimal_places=18, max_digits=38)),
                        ('min_notional', models.DecimalField(decimal_places=18, help_text='In the quote asset.', max_digits=38)),
                        ('max_notional', models.DecimalField(decimal_places=18, help_text='In the quote asset.', max_digits=38)),
                        ('status', models.CharField(choices=[('trading', 'Trading'), ('halted', 'Halted')], default='trading', max_length=10)),
                        ('reference_price', models.DecimalField(decimal_places=18, help_text='Mid price in the quote asset, set by operators.', max_digits=38)),
                        ('spread_bps', models.DecimalField(blank=True, decimal_places=2, max_digits=8, null=True)),
                        ('taker_fee_bps', models.DecimalField(blank=True, decimal_places=2, max_digits=8, null=True)),
                        ('price_updated_at', models.DateTimeField(blank=True, editable=False)),
                        ('updated_at', models.DateTimeField(blank=True, editable=False)),
                        ('history_id', models.AutoField(primary_key=True, serialize=False)),
                        ('history_date', models.DateTimeField(db_index=True)),
                        ('history_change_reason', models.CharField(max_length=100, null=True)),
                        ('history_type', models.CharField(choices=[('+', 'Created'), ('~', 'Changed'), ('-', 'Deleted')], max_length=1)),
                        ('base_asset', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='ledger.asset')),
                        ('history_user', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('quote_asset', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='ledger.asset')),
                    ],
                    options={
                        'db_table': 'orders_historicalmarket',
                        'verbose_name': 'historical market',
                        'verbose_name_plural': 'historical markets',
                        'ordering': ('-history_date', '-history_id'),
                        'get_latest_by': ('history_date', 'history_id'),
                    },
                    bases=(simple_history.models.HistoricalChanges, models.Model),
                ),
                migrations.CreateModel(
                    name='Market',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('symbol', models.CharField(max_length=20, unique=True)),
                        ('quantity_step', models.DecimalField(decimal_places=18, help_text='Order quantities (base) must be a multiple of this.', max_digits=38)),
                        ('min_quantity', models.DecimalField(decimal_places=18, max_digits=38)),
                        ('min_notional', models.DecimalField(decimal_places=18, help_text='In the quote asset.', max_digits=38)),
                        ('max_notional', models.DecimalField(decimal_places=18, help_text='In the quote asset.', max_digits=38)),
                        ('status', models.CharField(choices=[('trading', 'Trading'), ('halted', 'Halted')], default='trading', max_length=10)),
                        ('reference_price', models.DecimalField(decimal_places=18, help_text='Mid price in the quote asset, set by operators.', max_digits=38)),
                        ('spread_bps', models.DecimalField(blank=True, decimal_places=2, max_digits=8, null=True)),
                        ('taker_fee_bps', models.DecimalField(blank=True, decimal_places=2, max_digits=8, null=True)),
                        ('price_updated_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('base_asset', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='base_markets', to='ledger.asset')),
                        ('quote_asset', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='quote_markets', to='ledger.asset')),
                    ],
                    options={
                        'db_table': 'orders_market',
                        'ordering': ['symbol'],
                    },
                ),
                migrations.AddConstraint(
                    model_name='market',
                    constraint=models.CheckConstraint(condition=models.Q(('reference_price__gt', 0)), name='market_price_positive'),
                ),
                migrations.AddConstraint(
                    model_name='market',
                    constraint=models.CheckConstraint(condition=models.Q(('quantity_step__gt', 0)), name='market_step_positive'),
                ),
                migrations.AddConstraint(
                    model_name='market',
                    constraint=models.CheckConstraint(condition=models.Q(('min_notional__lte', models.F('max_notional'))), name='market_notional_range'),
                ),
                migrations.AddConstraint(
                    model_name='market',
                    constraint=models.CheckConstraint(condition=models.Q(('spread_bps__isnull', True), models.Q(('spread_bps__gte', 0), ('spread_bps__lt', 10000)), _connector='OR'), name='market_spread_range'),
                ),
                migrations.AddConstraint(
                    model_name='market',
                    constraint=models.CheckConstraint(condition=models.Q(('taker_fee_bps__isnull', True), models.Q(('taker_fee_bps__gte', 0), ('taker_fee_bps__lt', 10000)), _connector='OR'), name='market_fee_range'),
                ),
            ],
        ),
    ]
