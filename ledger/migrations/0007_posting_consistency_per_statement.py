"""Check a posting's asset, account and precision once per INSERT statement, not once per row.

The order path inserts all of a settlement's postings (five or more per trade) in one statement; a row trigger ran
a query per posting. This statement trigger reads the inserted rows from the transition table and checks them in
one query, with the same rule and the same error as migration 0003's row trigger.
"""

import importlib

from django.db import migrations

_rules = importlib.import_module("ledger.migrations.0003_postgres_ledger_rules")

FORWARD = r"""
DROP TRIGGER IF EXISTS ledger_posting_consistent ON ledger_posting;
CREATE OR REPLACE FUNCTION ledger_postings_consistent() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT p.ledger_account_id, p.asset_id, p.account_id, p.amount,
           la.asset_id AS la_asset, la.account_id AS la_account, a.decimals
      INTO bad
      FROM new_postings p
      LEFT JOIN ledger_ledgeraccount la ON la.id = p.ledger_account_id
      LEFT JOIN ledger_asset a ON a.code = la.asset_id
     WHERE p.asset_id IS DISTINCT FROM la.asset_id OR p.account_id IS DISTINCT FROM la.account_id
        OR p.amount <> round(p.amount, a.decimals)
     LIMIT 1;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF bad.asset_id IS DISTINCT FROM bad.la_asset OR bad.account_id IS DISTINCT FROM bad.la_account THEN
        RAISE EXCEPTION 'posting asset/account (%/%) differ from its ledger account % (%/%)',
            bad.asset_id, bad.account_id, bad.ledger_account_id, bad.la_asset, bad.la_account
            USING ERRCODE = 'check_violation';
    END IF;
    RAISE EXCEPTION 'posting amount % has more than % decimals for %', bad.amount, bad.decimals, bad.asset_id
        USING ERRCODE = 'check_violation';
END
$$;
CREATE TRIGGER ledger_posting_consistent AFTER INSERT ON ledger_posting
    REFERENCING NEW TABLE AS new_postings FOR EACH STATEMENT EXECUTE FUNCTION ledger_postings_consistent();
"""

BACKWARD = r"""
DROP TRIGGER IF EXISTS ledger_posting_consistent ON ledger_posting;
DROP FUNCTION IF EXISTS ledger_postings_consistent();
CREATE TRIGGER ledger_posting_consistent BEFORE INSERT ON ledger_posting
    FOR EACH ROW EXECUTE FUNCTION ledger_posting_consistent();
"""


def forward(apps, schema_editor):
    _rules._run(schema_editor, FORWARD)  # no parameters: the RAISE formats' '%' must reach PostgreSQL untouched


def backward(apps, schema_editor):
    _rules._run(schema_editor, BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0006_posting_entry_asset_index")]

    operations = [migrations.RunPython(forward, backward)]
