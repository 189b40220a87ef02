"""Index postings by (entry, asset), for the deferred balance check, and drop the entry-only index it covers.

Without planner statistics PostgreSQL answered the check's ``GROUP BY asset_id ... WHERE entry_id = ?`` by walking
the asset index over every posting, so each commit cost more as history grew. The new index is created before the
old one is dropped, so lookups by entry are never without an index.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0003_apikey_id_is_prefix'),
        ('ledger', '0005_entry_kinds_for_orders'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='posting',
            index=models.Index(fields=['entry', 'asset'], name='ledger_posting_entry_asset'),
        ),
        migrations.AlterField(
            model_name='posting',
            name='entry',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='postings', to='ledger.journalentry'),
        ),
    ]
