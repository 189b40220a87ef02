"""Check a new entry's balance once, not once per posting.

The deferred posting trigger re-summed the whole entry for each of its postings. An entry created in the same
transaction is already checked (after all its postings) by its own deferred trigger, so the posting trigger now
only checks postings added to entries of earlier transactions. Rows written inside a savepoint carry the
subtransaction's id, which never equals the top-level id: those postings simply get the full check, as before.
"""

import importlib

from django.db import migrations

_rules = importlib.import_module("ledger.migrations.0003_postgres_ledger_rules")

# The same function as in 0003, with one early return for postings of entries created in this transaction.
FORWARD = _rules.ENTRY_BALANCED_FUNCTION.replace(
    """        eid := NEW.entry_id;
    ELSE""",
    """        eid := NEW.entry_id;
        IF EXISTS (SELECT 1 FROM ledger_journalentry
                    WHERE id = eid AND xmin = pg_current_xact_id()::xid) THEN
            RETURN NULL;  -- the entry's own deferred trigger checks it after all its postings
        END IF;
    ELSE""",
)
assert FORWARD != _rules.ENTRY_BALANCED_FUNCTION
BACKWARD = _rules.ENTRY_BALANCED_FUNCTION


def forward(apps, schema_editor):
    _rules._run(schema_editor, FORWARD)


def backward(apps, schema_editor):
    _rules._run(schema_editor, BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0003_postgres_ledger_rules")]

    operations = [migrations.RunPython(forward, backward)]
