"""PostgreSQL tells every process at once when an API key or a user changes, so processes may keep keys in memory
(accounts/key_cache.py): AFTER UPDATE OR DELETE triggers NOTIFY ``exchange_api_keys`` with ``key:<prefix>`` or
``user:<id>``, delivered when the change commits. A write of ``last_used_at`` alone notifies nobody."""

from django.db import migrations

FORWARD = r"""
CREATE OR REPLACE FUNCTION accounts_api_key_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'accounts_apikey' THEN
        IF TG_OP = 'UPDATE' AND (to_jsonb(NEW) - 'last_used_at') = (to_jsonb(OLD) - 'last_used_at') THEN
            RETURN NULL;
        END IF;
        PERFORM pg_notify('exchange_api_keys', 'key:' || OLD.prefix);
        IF TG_OP = 'UPDATE' AND NEW.prefix <> OLD.prefix THEN
            PERFORM pg_notify('exchange_api_keys', 'key:' || NEW.prefix);
        END IF;
    ELSE
        PERFORM pg_notify('exchange_api_keys', 'user:' || OLD.id);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER accounts_apikey_changed AFTER UPDATE OR DELETE ON accounts_apikey
    FOR EACH ROW EXECUTE FUNCTION accounts_api_key_changed();
CREATE TRIGGER auth_user_changed AFTER UPDATE OR DELETE ON auth_user
    FOR EACH ROW EXECUTE FUNCTION accounts_api_key_changed();
"""
BACKWARD = r"""
DROP TRIGGER IF EXISTS auth_user_changed ON auth_user;
DROP TRIGGER IF EXISTS accounts_apikey_changed ON accounts_apikey;
DROP FUNCTION IF EXISTS accounts_api_key_changed();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0003_apikey_id_is_prefix"), ("auth", "0012_alter_user_first_name_max_length")]

    operations = [migrations.RunPython(forward, backward)]
