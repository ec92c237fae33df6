"""Billing use cases as plain functions, each in its own unit of work.

Every function takes a :class:`~backend.service_layer.unit_of_work.UnitOfWork`
(and the :class:`~backend.gateway.base.PaymentGateway` when money moves), does
one thing, and either commits it entirely or raises a
:class:`~backend.service_layer.errors.ServiceError` having written nothing.

This module gathers them in one namespace (``services.create_payment``...);
they live in small modules named for what they do:

* :mod:`.bill_generation` - one household's bills from readings and tariffs;
* :mod:`.bill_run` - the monthly run over every household, set-based, and autopay;
* :mod:`.readings` - meter readings;
* :mod:`.statements` - balance, bills, usage, forecast;
* :mod:`.payments` - the payment flow, reconciliation, refunds, autopay;
* :mod:`.reminders` - the notice outbox and late fees;
* :mod:`.reports` - trial balance, ledger check, staff reports;
* :mod:`.access` - tokens, residents, link codes;
* :mod:`.stepup` - step-up verification outcomes, lockout, single-use proofs;
* :mod:`.risk` - risk features and the assessment of each payment;
* :mod:`.audit` - the hash-chained audit log.
"""

from __future__ import annotations

from backend.service_layer.access import (
    Principal,
    _code_hash,
    authenticate,
    check_household_access,
    create_link_code,
    get_resident,
    hash_token,
    issue_token,
    redeem_link_code,
    resolve_link,
    unlink,
    verify_token,
)
from backend.service_layer.bill_generation import GenerationReport, generate_household_bills
from backend.service_layer.bill_run import generate_bills
from backend.service_layer.common import (
    aware,
    bill_id_for,
    check_utility,
    get_household,
    midnight,
    post,
    refresh_status,
    tariff_version,
    utcnow,
)
from backend.service_layer.payments import (
    PaymentBlocked,
    apply_webhook,
    create_payment,
    get_autopay,
    get_payment,
    get_receipt,
    held_payments,
    list_payments,
    payment_household,
    preview_payment,
    reconcile_pending,
    refund_payment,
    review_payment,
    run_autopay,
    set_autopay,
)
from backend.service_layer.readings import (
    flagged_readings,
    list_readings,
    record_reading,
    review_reading,
)
from backend.service_layer.reminders import (
    mark_notice_delivered,
    notice_household,
    pending_notices,
    run_reminders,
)
from backend.service_layer.reports import (
    AGING_BUCKETS,
    ledger_check,
    report_arrears,
    report_forecasts,
    report_usage_revenue,
    trial_balance,
)
from backend.service_layer.statements import (
    balance,
    bill_household,
    forecast,
    get_bill,
    get_bills,
    list_bills,
    usage_series,
)

__all__ = [
    "AGING_BUCKETS",
    "GenerationReport",
    "PaymentBlocked",
    "Principal",
    "_code_hash",
    "apply_webhook",
    "authenticate",
    "aware",
    "balance",
    "bill_household",
    "bill_id_for",
    "check_household_access",
    "check_utility",
    "create_link_code",
    "create_payment",
    "flagged_readings",
    "forecast",
    "generate_bills",
    "generate_household_bills",
    "get_autopay",
    "get_bill",
    "get_bills",
    "get_household",
    "get_payment",
    "get_receipt",
    "get_resident",
    "hash_token",
    "held_payments",
    "issue_token",
    "ledger_check",
    "list_bills",
    "list_payments",
    "list_readings",
    "mark_notice_delivered",
    "midnight",
    "notice_household",
    "payment_household",
    "pending_notices",
    "post",
    "preview_payment",
    "reconcile_pending",
    "record_reading",
    "redeem_link_code",
    "refresh_status",
    "refund_payment",
    "report_arrears",
    "report_forecasts",
    "report_usage_revenue",
    "resolve_link",
    "review_payment",
    "review_reading",
    "run_autopay",
    "run_reminders",
    "set_autopay",
    "tariff_version",
    "trial_balance",
    "unlink",
    "usage_series",
    "utcnow",
    "verify_token",
]
