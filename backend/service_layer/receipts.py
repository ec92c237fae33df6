"""Receipt documents: a payment's receipt rendered as PDF."""

from __future__ import annotations

from sqlalchemy import select

from backend.adapters import orm
from backend.receipts import ReceiptAllocation, ReceiptData
from backend.service_layer import services
from backend.service_layer.unit_of_work import UnitOfWork

#: The community name printed on receipts.
COMMUNITY_NAME = "Lakeside Gardens 湖畔花园"


def receipt_data(uow: UnitOfWork, payment_id: str) -> ReceiptData:
    """The :class:`backend.receipts.ReceiptData` of a payment with a receipt number."""
    receipt = services.get_receipt(uow, payment_id)
    with uow:
        p = uow.repo.payment(payment_id)
        assert p is not None
        payer = uow.session.scalars(
            select(orm.Resident.name)
            .where(orm.Resident.household_id == p.household_id)
            .order_by(orm.Resident.is_primary.desc(), orm.Resident.resident_id)
        ).first()
        reference = p.gateway_reference or ""
        credited = p.credited
    allocations = [
        ReceiptAllocation(a.utility, a.period_start, a.period_end, a.amount)
        for a in receipt.allocations
    ]
    notes = ""
    if credited > 0:
        allocations.append(
            ReceiptAllocation(
                receipt.allocations[0].utility if receipt.allocations else "general",
                None,
                None,
                credited,
                "Credit (overpayment)",
            )
        )
        notes = f"{credited:f} kept as credit for future bills."
    if receipt.refunded > 0:
        notes = (notes + f" Refunded: {receipt.refunded:f}.").strip()
    return ReceiptData(
        receipt_no=receipt.receipt_no,
        issued_at=receipt.paid_at,
        community=COMMUNITY_NAME,
        unit=f"{receipt.building}, {receipt.unit}" if receipt.building else receipt.unit,
        household_id=receipt.household_id,
        payer=payer or "",
        amount=receipt.amount,
        currency=receipt.currency,
        method=receipt.method,
        gateway_reference=reference,
        allocations=allocations,
        status=receipt.status,
        payment_id=receipt.payment_id,
        notes=notes,
    )


def receipt_pdf(uow: UnitOfWork, payment_id: str) -> bytes:
    """The receipt of ``payment_id`` as PDF bytes."""
    from backend.receipts.pdf import render_receipt_pdf

    return render_receipt_pdf(receipt_data(uow, payment_id))
