"""reconciliation filters (django-filter): the log's query parameters (``GET reconciliation/logs/``).

They only narrow: the viewset's queryset is already the requesting user's log, and
``UserScopedViewSet`` re-applies the owner filter after them.
"""

from __future__ import annotations

import django_filters

from reconciliation.models import ReconciliationLog


class ReconciliationLogFilter(django_filters.FilterSet):
    """``?event_type= &status= &symbol= &ticket= &matched= &divergence_reason= &created_after= &created_before=``.

    ``symbol`` is case-insensitive; ``created_after`` is inclusive and ``created_before`` exclusive
    (ISO 8601 with an offset); ``matched`` takes ``true``/``false``.
    """

    event_type = django_filters.ChoiceFilter(choices=ReconciliationLog.EventType.choices)
    status = django_filters.ChoiceFilter(choices=ReconciliationLog.Status.choices)
    symbol = django_filters.CharFilter(method="filter_symbol", max_length=32)
    ticket = django_filters.NumberFilter()
    # Strict true/false: django-filter's BooleanFilter silently ignores a value it cannot read.
    matched = django_filters.TypedChoiceFilter(
        choices=(("true", "true"), ("false", "false")), coerce=lambda value: value == "true"
    )
    divergence_reason = django_filters.ChoiceFilter(choices=ReconciliationLog.DivergenceReason.choices)
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = ReconciliationLog
        fields = (
            "event_type",
            "status",
            "symbol",
            "ticket",
            "matched",
            "divergence_reason",
            "created_after",
            "created_before",
        )

    def filter_symbol(self, queryset, name, value):
        return queryset.filter(symbol=value.strip().upper())
