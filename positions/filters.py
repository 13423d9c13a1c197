"""positions filters (django-filter): history by status and symbol (SPEC §6 ``GET positions/``)."""

from __future__ import annotations

import django_filters

from positions.models import Position


class PositionFilter(django_filters.FilterSet):
    """``?status=pending|open|closed`` and ``?symbol=EURUSD`` (case-insensitive, exact)."""

    status = django_filters.ChoiceFilter(choices=Position.Status.choices)
    symbol = django_filters.CharFilter(method="filter_symbol")

    class Meta:
        model = Position
        fields = ("status", "symbol")

    def filter_symbol(self, queryset, name, value):
        return queryset.filter(symbol=value.strip().upper())
