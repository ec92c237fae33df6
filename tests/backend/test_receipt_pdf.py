"""Tests of the receipt PDF: it parses, shows every field, renders Chinese, is reproducible."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from pypdf import PdfReader

from backend.receipts import ReceiptAllocation, ReceiptData, render_receipt_pdf
from backend.receipts.pdf import markup, money


def receipt(**overrides: object) -> ReceiptData:
    data = ReceiptData(
        receipt_no="R2026-000123",
        issued_at=datetime(2026, 11, 3, 9, 30, tzinfo=UTC),
        community="Lakeside Gardens 湖畔花园",
        unit="Building 1, Unit 1203",
        household_id="hh-0001",
        payer="王小明",
        amount=Decimal("1234.50"),
        currency="CNY",
        method="wechat_pay",
        gateway_reference="sbx_ch_s_123450_CNY_0123456789abcdef0123_0123456789abcdef01234567",
        allocations=[
            ReceiptAllocation(
                "electricity", date(2026, 9, 1), date(2026, 9, 30), Decimal("234.50")
            ),
            ReceiptAllocation(
                "property_fee", date(2026, 10, 1), date(2026, 10, 31), Decimal("900.00")
            ),
        ],
        payment_id="pay-42",
        notes="Overpayment kept as credit on electricity",
    )
    return replace(data, **overrides)  # type: ignore[arg-type]


def text_of(pdf: bytes, pages: int = 1) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == pages
    return "\n".join(page.extract_text() for page in reader.pages)


def test_pdf_parses_and_shows_every_field() -> None:
    pdf = render_receipt_pdf(receipt())
    assert pdf.startswith(b"%PDF-")
    text = text_of(pdf)
    flat = "".join(text.split())  # long unbroken values wrap mid-word
    for expected in [
        "R2026-000123",
        "2026-11-03 09:30",
        "Building 1, Unit 1203",
        "hh-0001",
        "pay-42",
        "WeChat Pay",
        "sbx_ch_s_123450_CNY_0123456789abcdef0123_0123456789abcdef01234567",
        "Electricity",
        "2026-09-01",
        "2026-09-30",
        "234.50",
        "Property fee",
        "900.00",
        "CNY 1,234.50",
        "Overpayment kept as credit on electricity",
        "Paid",
    ]:
        assert "".join(expected.split()) in flat, expected
    # 1234.50 paid, 1134.50 allocated: the rest is shown as a credit
    assert "100.00" in text and "Credit" in text


def test_chinese_text_is_rendered_with_the_cid_font() -> None:
    pdf = render_receipt_pdf(receipt())
    text = text_of(pdf)
    for expected in ["付款收据", "湖畔花园", "王小明", "微信支付", "电费", "物业费", "实付金额"]:
        assert expected in text, expected
    fonts = PdfReader(io.BytesIO(pdf)).pages[0]["/Resources"]["/Font"]
    names = {str(f.get_object()["/BaseFont"]) for f in fonts.values()}
    assert "/STSong-Light" in names and "/Helvetica" in names


def test_uncompressed_mode_exposes_the_receipt_number() -> None:
    raw = render_receipt_pdf(receipt(), compress=False)
    assert b"(R2026-000123) Tj" in raw  # drawn in a plain-text content stream
    assert b"(R2026-000123) Tj" not in render_receipt_pdf(receipt())  # deflated


def test_rendering_is_reproducible() -> None:
    assert render_receipt_pdf(receipt()) == render_receipt_pdf(receipt())
    assert render_receipt_pdf(receipt()) != render_receipt_pdf(receipt(receipt_no="R2026-000124"))


@pytest.mark.parametrize(
    ("status", "stamp"), [("pending", "PENDING"), ("reversed", "REVERSED"), ("failed", "FAILED")]
)
def test_non_final_statuses_are_stamped(status: str, stamp: str) -> None:
    text = text_of(render_receipt_pdf(receipt(status=status)))
    assert stamp in text
    assert "PENDING" not in text_of(render_receipt_pdf(receipt()))


def test_markup_is_escaped_and_control_characters_dropped() -> None:
    hostile = 'Tom <b>&</b> "Jerry"\x00\x07 新年'
    pdf = render_receipt_pdf(receipt(payer=hostile, notes="<para>x</para>\nline two"))
    text = text_of(pdf)
    assert 'Tom <b>&</b> "Jerry"' in text and "新年" in text
    assert "<para>x</para> line two" in text
    assert markup("a<b") == "a&lt;b"
    cjk = '<font name="STSong-Light">'
    assert markup("价格 5元") == f"{cjk}价格</font> 5{cjk}元</font>"


def test_long_values_wrap_instead_of_overflowing() -> None:
    long_community = "Lakeside Gardens 湖畔花园 " * 20
    allocations = [
        ReceiptAllocation("water", date(2025, m, 1), date(2025, m, 28), Decimal("10.00"))
        for m in range(1, 13)
    ]
    pdf = render_receipt_pdf(
        receipt(community=long_community, allocations=allocations, amount=Decimal("120.00"))
    )
    text = text_of(pdf, pages=2)  # the receipt flows on to a second page
    assert text.count("Water") == 12


def test_credit_only_and_unknown_labels() -> None:
    allocations = [ReceiptAllocation("gas", None, None, Decimal("50.00"))]
    pdf = render_receipt_pdf(
        receipt(allocations=allocations, amount=Decimal("50.00"), method="bank_transfer", notes="")
    )
    text = text_of(pdf)
    assert "Gas" in text and "Credit" in text and "Bank transfer" in text
    assert "Notes" not in text


def test_money_format() -> None:
    assert money(Decimal("1234567.5"), "CNY") == "CNY 1,234,567.50"
    assert money(Decimal("0.01")) == "0.01"


def test_floats_are_refused() -> None:
    with pytest.raises(TypeError):
        receipt(amount=12.5)
    with pytest.raises(TypeError):
        ReceiptAllocation("water", None, None, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        receipt(amount=Decimal("NaN"))
    with pytest.raises(ValueError):
        receipt(receipt_no="")
