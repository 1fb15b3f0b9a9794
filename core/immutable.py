"""Append-only models: rows are inserted once and never updated or deleted (SPEC §6.8)."""

from django.db import models


class ImmutableError(Exception):
    pass


class ImmutableQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise ImmutableError(f"{self.model.__name__} rows are append-only; add a correction.")

    def delete(self):
        raise ImmutableError(f"{self.model.__name__} rows are append-only; add a correction.")

    # Django's bulk_update goes through QuerySet.update, so it is refused as well.


class ImmutableModel(models.Model):
    objects = ImmutableQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ImmutableError(f"{type(self).__name__} rows are append-only; add a correction.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableError(f"{type(self).__name__} rows are append-only; add a correction.")


def immutable_trigger_sql(table: str) -> tuple[str, str]:
    """PostgreSQL trigger refusing UPDATE and DELETE on `table` (forward, reverse SQL)."""
    fn = f"{table}_refuse_change"
    forward = f"""
        CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger AS $$
        BEGIN
            RAISE EXCEPTION '%% rows are append-only (%%)', TG_TABLE_NAME, TG_OP
                USING ERRCODE = 'restrict_violation';
        END;
        $$ LANGUAGE plpgsql;
        CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION {fn}();
    """
    reverse = (
        f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}; DROP FUNCTION IF EXISTS {fn}();"
    )
    return forward, reverse
