"""Append-only tables: a queryset and model mixin that refuse updates and deletes by the application."""

from django.db import models


class AppendOnlyError(Exception):
    """Raised when code tries to update or delete a row of an append-only table."""


class AppendOnlyQuerySet(models.QuerySet):
    """QuerySet whose bulk ``update`` and ``delete`` raise :class:`AppendOnlyError`."""

    def update(self, **kwargs):
        raise AppendOnlyError(f"{self.model.__name__} is append-only: rows cannot be updated.")

    def delete(self):
        raise AppendOnlyError(f"{self.model.__name__} is append-only: rows cannot be deleted.")

    delete.queryset_only = True  # type: ignore[attr-defined]


class AppendOnlyModel(models.Model):
    """Abstract base: a row is inserted once; ``save()`` of a stored row and ``delete()`` raise."""

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError(f"{type(self).__name__} is append-only: rows cannot be updated.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(f"{type(self).__name__} is append-only: rows cannot be deleted.")
