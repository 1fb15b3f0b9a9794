"""Append-only models: rows are inserted once and never updated or deleted (SPEC §6.8)."""

from django.db import models


class ImmutableError(Exception):
    pass


class ImmutableQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise ImmutableError(f"{self.model.__name__} rows are append-only; add a correction.")

    def delete(self):
        raise ImmutableError(f"{self.model.__name__} rows are append-only; add a correction.")

    def bulk_create(self, objs, *args, **kwargs):
        # An upsert (INSERT … ON CONFLICT DO UPDATE) would rewrite the stored row.
        if kwargs.get("update_conflicts"):
            raise ImmutableError(f"{self.model.__name__} rows are append-only; no upserts.")
        return super().bulk_create(objs, *args, **kwargs)

    # Django's bulk_update goes through QuerySet.update, so it is refused as well.


class ImmutableModel(models.Model):
    objects = ImmutableQuerySet.as_manager()

    class Meta:
        abstract = True
        # Django's own machinery (and `Model._base_manager`) uses the base manager; make it
        # the refusing one too. Subclasses inherit it even with a Meta of their own.
        base_manager_name = "objects"

    def save(self, *args, **kwargs):
        if (
            not self._state.adding
            or args
            or kwargs.get("force_update")
            or kwargs.get("update_fields") is not None
        ):
            raise ImmutableError(f"{type(self).__name__} rows are append-only; add a correction.")
        # Always INSERT: a new instance carrying a stored pk must not turn into an UPDATE.
        kwargs["force_insert"] = True
        super().save(**kwargs)

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
