"""guards rule views: ``guards/rules/`` (an account's loss rules) and ``guards/rules/presets/``."""

from __future__ import annotations

from typing import cast

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from accounts.api import ACCOUNT_PARAMETER, AccountScopedMixin
from guards import loss_rules
from guards.models import LossRule
from guards.rule_serializers import LossRuleSerializer, PresetApplySerializer, PresetSerializer
from guards.rule_services import loss_rule_create, loss_rule_delete, loss_rule_update, loss_rules_apply_preset
from tradingsite.api import UserScopedViewSet


@extend_schema_view(
    list=extend_schema(parameters=[ACCOUNT_PARAMETER]),
    create=extend_schema(parameters=[ACCOUNT_PARAMETER]),
)
class LossRuleViewSet(
    AccountScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    UserScopedViewSet,
):
    """``guards/rules/?account=``: the account's loss rules (prop-firm daily and maximum loss).

    GET lists them with the latest sync's result; POST creates one, PATCH edits one (its state
    restarts at the next sync), DELETE removes one. ``GET guards/rules/presets/`` lists the firm presets
    with their sources; ``POST guards/rules/presets/`` replaces the account's preset rules with one.
    Bad input is a 400 with field errors and nothing written; another user's rule is a 404.
    """

    serializer_class = LossRuleSerializer
    pagination_class = None
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_scoped_queryset(self) -> QuerySet[LossRule]:
        queryset = LossRule.objects.filter(user_id=self.user_id)
        account_id = self.request_account_id(required=self.action in ("list", "create", "presets"))
        if account_id is not None:
            queryset = queryset.filter(account_id=account_id)
        return queryset.order_by("account_id", "kind", "id")

    def _account_id(self) -> int:
        account_id = self.request_account_id()
        if account_id is None:
            raise ValidationError(
                {"account": ["No account yet: rules belong to an account, created by its first sync."]}
            )
        return account_id

    def perform_create(self, serializer: BaseSerializer) -> None:
        serializer.instance = loss_rule_create(
            user_id=self.user_id, account_id=self._account_id(), **serializer.validated_data
        )

    def perform_update(self, serializer: BaseSerializer) -> None:
        serializer.instance = loss_rule_update(rule=cast(LossRule, serializer.instance), **serializer.validated_data)

    def perform_destroy(self, instance: LossRule) -> None:
        loss_rule_delete(rule=instance)

    @extend_schema(methods=["GET"], parameters=[ACCOUNT_PARAMETER], request=None, responses=PresetSerializer(many=True))
    @extend_schema(
        methods=["POST"],
        parameters=[ACCOUNT_PARAMETER],
        request=PresetApplySerializer,
        responses={201: LossRuleSerializer(many=True)},
    )
    @action(detail=False, methods=["get", "post"])
    def presets(self, request: Request) -> Response:
        """GET: the presets and their published sources. POST: apply one to the account."""
        if request.method == "GET":
            data = [
                {"preset": key, "rules": [rule.__dict__ for rule in rules]}
                for key, rules in sorted(loss_rules.PRESETS.items())
            ]
            return Response(PresetSerializer(data, many=True).data)
        body = PresetApplySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        rules = loss_rules_apply_preset(user_id=self.user_id, account_id=self._account_id(), **body.validated_data)
        return Response(LossRuleSerializer(rules, many=True).data, status=status.HTTP_201_CREATED)
