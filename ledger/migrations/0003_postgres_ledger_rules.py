"""Ledger rules the database itself enforces (PostgreSQL only; on SQLite the service layer is the only guard).

* Entries and postings are append-only: UPDATE and DELETE are refused.
* A posting's asset and customer account must be those of its ledger account, and its amount must not be finer
  than its asset's precision.
* At commit (deferred constraint triggers) every entry has at least two postings and they sum to zero per asset.
"""

from django.db import migrations

FORWARD = r"""
CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation', HINT = 'post a correcting entry instead';
END
$$;

CREATE TRIGGER ledger_journalentry_append_only BEFORE UPDATE OR DELETE ON ledger_journalentry
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_posting_append_only BEFORE UPDATE OR DELETE ON ledger_posting
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();

CREATE OR REPLACE FUNCTION ledger_posting_consistent() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    la_asset varchar;
    la_account bigint;
    places smallint;
BEGIN
    SELECT la.asset_id, la.account_id, a.decimals INTO la_asset, la_account, places
      FROM ledger_ledgeraccount la JOIN ledger_asset a ON a.code = la.asset_id
     WHERE la.id = NEW.ledger_account_id;
    IF NEW.asset_id IS DISTINCT FROM la_asset OR NEW.account_id IS DISTINCT FROM la_account THEN
        RAISE EXCEPTION 'posting asset/account (%/%) differ from its ledger account % (%/%)',
            NEW.asset_id, NEW.account_id, NEW.ledger_account_id, la_asset, la_account
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.amount <> round(NEW.amount, places) THEN
        RAISE EXCEPTION 'posting amount % has more than % decimals for %', NEW.amount, places, NEW.asset_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER ledger_posting_consistent BEFORE INSERT ON ledger_posting
    FOR EACH ROW EXECUTE FUNCTION ledger_posting_consistent();

"""

# Kept apart so migration 0004 can restore it when it is reversed.
ENTRY_BALANCED_FUNCTION = r"""
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

FORWARD = FORWARD + ENTRY_BALANCED_FUNCTION + r"""
CREATE CONSTRAINT TRIGGER ledger_entry_balanced AFTER INSERT ON ledger_journalentry
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_entry_balanced();
CREATE CONSTRAINT TRIGGER ledger_posting_balanced AFTER INSERT ON ledger_posting
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_entry_balanced();
"""

BACKWARD = r"""
DROP TRIGGER IF EXISTS ledger_posting_balanced ON ledger_posting;
DROP TRIGGER IF EXISTS ledger_entry_balanced ON ledger_journalentry;
DROP TRIGGER IF EXISTS ledger_posting_consistent ON ledger_posting;
DROP TRIGGER IF EXISTS ledger_posting_append_only ON ledger_posting;
DROP TRIGGER IF EXISTS ledger_journalentry_append_only ON ledger_journalentry;
DROP FUNCTION IF EXISTS ledger_entry_balanced();
DROP FUNCTION IF EXISTS ledger_posting_consistent();
DROP FUNCTION IF EXISTS ledger_refuse_change();
"""


def _run(schema_editor, sql):
    if schema_editor.connection.vendor != "postgresql":
        return
    # No parameters: the '%' in RAISE formats must reach PostgreSQL untouched.
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(sql)


def forward(apps, schema_editor):
    _run(schema_editor, FORWARD)


def backward(apps, schema_editor):
    _run(schema_editor, BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0002_reference_data")]

    operations = [migrations.RunPython(forward, backward)]
