"""positions filters (django-filter): history by status and symbol (``GET positions/``)."""

from __future__ import annotations

import django_filters

from positions.models import Deal, Position


class PositionFilter(django_filters.FilterSet):
    """``?status=pending|open|closed`` and ``?symbol=EURUSD`` (case-insensitive, exact)."""

    status = django_filters.ChoiceFilter(choices=Position.Status.choices)
    symbol = django_filters.CharFilter(method="filter_symbol")

    class Meta:
        model = Position
        fields = ("status", "symbol")

    def filter_symbol(self, queryset, name, value):
        return queryset.filter(symbol=value.strip().upper())


class DealFilter(django_filters.FilterSet):
    """``?symbol=``, ``?type=`` (MT5 deal type code), ``?entry=`` (0 in, 1 out, 2 inout, 3 out by),
    ``?position_id=`` (MT5 position identifier), ``?since=``/``?until=`` (deal time, ISO 8601)."""

    symbol = django_filters.CharFilter(method="filter_symbol")
    type = django_filters.TypedChoiceFilter(choices=Deal.Type.choices, coerce=int)
    entry = django_filters.TypedChoiceFilter(choices=Deal.Entry.choices, coerce=int)
    position_id = django_filters.NumberFilter(field_name="position_identifier", min_value=0)
    since = django_filters.IsoDateTimeFilter(field_name="time", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="time", lookup_expr="lt")

    class Meta:
        model = Deal
        fields = ("symbol", "type", "entry", "position_id", "since", "until")

    def filter_symbol(self, queryset, name, value):
        return queryset.filter(symbol=value.strip().upper())
