"""guards rule services: an account's loss rules (create, update, delete, apply a firm preset).

Every write validates the whole rule (``LossRule.clean`` = ``guards.loss_rules.LossRule.errors`` plus
the model's fields) before saving: a ``ValidationError`` with field errors means nothing was written.
Changing a rule's definition clears its state and result (the next sync starts it afresh). Each write
bumps the user's cache generation after commit.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from guards import loss_rules
from guards.models import GuardConfig, Level, LossRule
from tradingsite.caching import bump_and_warm_user

RULE_FIELDS = (
    "name", "kind", "anchor", "basis", "amount", "percent", "percent_of", "reset_time", "timezone", "inclusive",
    "warning_remaining_pct", "enabled",
)  # fmt: skip


def _reset_memory(rule: LossRule) -> None:
    for name in (*LossRule.STATE_FIELDS, *LossRule.RESULT_FIELDS):
        setattr(rule, name, None)
    rule.level = Level.OK


def _save(rule: LossRule) -> LossRule:
    rule.full_clean(exclude=["user", "account"])
    rule.save()
    transaction.on_commit(lambda: bump_and_warm_user(rule.user_id))
    return rule


@transaction.atomic
def loss_rule_create(*, user_id: int, account_id: int, **fields: Any) -> LossRule:
    """Create a rule on the account (fields in ``RULE_FIELDS``); raises ``ValidationError`` (nothing written)."""
    unknown = sorted(set(fields) - set(RULE_FIELDS))
    if unknown:
        raise ValidationError({name: "Unknown or read-only field." for name in unknown})
    return _save(LossRule(user_id=user_id, account_id=account_id, **fields))


@transaction.atomic
def loss_rule_update(*, rule: LossRule, **fields: Any) -> LossRule:
    """Update a rule's definition; its state and latest result restart at the next sync."""
    unknown = sorted(set(fields) - set(RULE_FIELDS))
    if unknown:
        raise ValidationError({name: "Unknown or read-only field." for name in unknown})
    rule = LossRule.objects.select_for_update().get(pk=rule.pk, user_id=rule.user_id)
    for name, value in fields.items():
        setattr(rule, name, value)
    rule.preset = rule.preset if set(fields) <= {"enabled", "name"} else ""
    _reset_memory(rule)
    return _save(rule)


@transaction.atomic
def loss_rule_delete(*, rule: LossRule) -> None:
    """Delete a rule."""
    user_id = rule.user_id
    LossRule.objects.filter(pk=rule.pk, user_id=user_id).delete()
    transaction.on_commit(lambda: bump_and_warm_user(user_id))


@transaction.atomic
def loss_rules_apply_preset(
    *, user_id: int, account_id: int, preset: str, initial_capital: Decimal | None = None
) -> list[LossRule]:
    """Replace the account's rules of any preset with the rules of ``preset`` (``guards.loss_rules.PRESETS``).

    ``initial_capital`` (account currency, > 0) sets ``GuardConfig.initial_capital``, which the rules
    need; without it the config must already have one. Rules the user wrote by hand are kept.
    Raises ``ValidationError`` (nothing written) on an unknown preset or a missing initial capital.
    """
    if preset not in loss_rules.PRESETS:
        raise ValidationError({"preset": f"Unknown preset; one of {', '.join(sorted(loss_rules.PRESETS))}."})
    config, _ = GuardConfig.objects.select_for_update().get_or_create(user_id=user_id, account_id=account_id)
    if initial_capital is not None:
        if initial_capital <= 0:
            raise ValidationError({"initial_capital": "Must be greater than 0 (account currency)."})
        config.initial_capital = initial_capital
        config.save(update_fields=["initial_capital", "updated_at"])
    elif config.initial_capital is None:
        raise ValidationError({"initial_capital": "Required: the preset's percentages are of the initial capital."})
    LossRule.objects.filter(user_id=user_id, account_id=account_id).exclude(preset="").delete()
    rules = []
    for spec in loss_rules.PRESETS[preset]:
        rule = LossRule(
            user_id=user_id, account_id=account_id, name=spec.name, kind=spec.kind, anchor=spec.anchor,
            basis=spec.basis, amount=spec.amount, percent=spec.percent, percent_of=spec.percent_of,
            reset_time=spec.reset_time, timezone=spec.timezone, inclusive=spec.inclusive,
            warning_remaining_pct=spec.warning_remaining_pct, preset=preset, source=spec.source,
        )  # fmt: skip
        rule.full_clean(exclude=["user", "account"])
        rules.append(rule)
    LossRule.objects.bulk_create(rules)
    transaction.on_commit(lambda: bump_and_warm_user(user_id))
    return rules
