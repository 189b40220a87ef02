"""Check a new entry's balance once, not once per posting.

The deferred posting trigger re-summed the whole entry for each of its postings. An entry created in the same
transaction is already checked (after all its postings) by its own deferred trigger, so the posting trigger now
only checks postings added to entries of earlier transactions. Rows written inside a savepoint carry the
subtransaction's id, which never equals the top-level id: those postings simply get the full check, as before.
"""

from django.db import migrations

FORWARD = r"""
CREATE OR REPLACE FUNCTION ledger_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    eid bigint;
    n integer;
    bad record;
BEGIN
    IF TG_TABLE_NAME = 'ledger_posting' THEN
        eid := NEW.entry_id;
        IF EXISTS (SELECT 1 FROM ledger_journalentry
                    WHERE id = eid AND xmin = pg_current_xact_id()::xid) THEN
            RETURN NULL;  -- the entry's own deferred trigger checks it after all its postings
        END IF;
    ELSE
        eid := NEW.id;
    END IF;
    SELECT count(*) INTO n FROM ledger_posting WHERE entry_id = eid;
    IF n < 2 THEN
        RAISE EXCEPTION 'journal entry % has % posting(s); at least two are required', eid, n
            USING ERRCODE = 'check_violation';
    END IF;
    SELECT asset_id, sum(amount) AS total INTO bad
      FROM ledger_posting WHERE entry_id = eid GROUP BY asset_id HAVING sum(amount) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % does not balance: % postings sum to %', eid, bad.asset_id, bad.total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END
$$;
"""

BACKWARD = r"""
CREATE OR REPLACE FUNCTION ledger_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    eid bigint;
    n integer;
    bad record;
BEGIN
    IF TG_TABLE_NAME = 'ledger_posting' THEN
        eid := NEW.entry_id;
    ELSE
        eid := NEW.id;
    END IF;
    SELECT count(*) INTO n FROM ledger_posting WHERE entry_id = eid;
    IF n < 2 THEN
        RAISE EXCEPTION 'journal entry % has % posting(s); at least two are required', eid, n
            USING ERRCODE = 'check_violation';
    END IF;
    SELECT asset_id, sum(amount) AS total INTO bad
      FROM ledger_posting WHERE entry_id = eid GROUP BY asset_id HAVING sum(amount) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % does not balance: % postings sum to %', eid, bad.asset_id, bad.total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END
$$;
"""


def _run(schema_editor, sql):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(sql)


def forward(apps, schema_editor):
    _run(schema_editor, FORWARD)


def backward(apps, schema_editor):
    _run(schema_editor, BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0003_postgres_ledger_rules")]

    operations = [migrations.RunPython(forward, backward)]
