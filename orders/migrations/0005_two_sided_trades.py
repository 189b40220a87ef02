# Trades become two-sided (taker and maker): the columns of the old one-sided trade are the taker's, the maker
# of every existing trade is the house (its quote amount the taker's, no maker fee).

from decimal import Decimal

from django.db import migrations
from django.db.models import F

import ledger.models


def house_was_the_maker(apps, schema_editor):
    Trade = apps.get_model("orders", "Trade")
    Trade.objects.update(maker_quote=F("taker_quote"))








class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0004_market_moved_to_markets'),
        ('markets', '0003_order_book_rules'),
    ]

    operations = [
        migrations.RemoveIndex(model_name='trade', name='orders_trad_account_0c10a8_idx'),
        migrations.RemoveConstraint(model_name='trade', name='trade_amounts_positive'),
        migrations.RenameField(model_name='trade', old_name='order', new_name='taker_order'),
        migrations.RenameField(model_name='trade', old_name='account', new_name='taker_account'),
        migrations.RenameField(model_name='trade', old_name='side', new_name='taker_side'),
        migrations.RenameField(model_name='trade', old_name='quote_amount', new_name='taker_quote'),
        migrations.RenameField(model_name='trade', old_name='fee', new_name='taker_fee'),
        migrations.RenameField(model_name='trade', old_name='fee_bps', new_name='taker_fee_bps'),
        migrations.RemoveField(model_name='trade', name='liquidity'),
        migrations.AddField(
            model_name='trade',
            name='maker_quote',
            field=ledger.models.money_field(default=Decimal(0)),
            preserve_default=False,
        ),
        migrations.RunPython(house_was_the_maker, migrations.RunPython.noop),
    ]
