"""Render a payment receipt as a PDF (bilingual, English and Chinese).

Latin text is set in Helvetica and every other character (Chinese names,
community names, 元) in ``STSong-Light``, one of the Adobe CID fonts every PDF
reader ships; reportlab references it without embedding a font file, so nothing
is downloaded and the PDF stays small (a few KB).

The output is byte-for-byte reproducible for the same :class:`ReceiptData`
(reportlab's invariant mode: no creation timestamp, fixed document id), so a
re-rendered receipt can be compared with, or hashed against, the one sent.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

if TYPE_CHECKING:
    from backend.receipts import ReceiptAllocation, ReceiptData

#: The CJK font used for every non-Latin-1 character.
CJK_FONT: Final = "STSong-Light"
LATIN_FONT: Final = "Helvetica"
LATIN_BOLD: Final = "Helvetica-Bold"

UTILITY_LABELS: Final = {
    "electricity": "Electricity 电费",
    "water": "Water 水费",
    "gas": "Gas 燃气费",
    "property_fee": "Property fee 物业费",
}
METHOD_LABELS: Final = {
    "card": "Bank card 银行卡",
    "bank_transfer": "Bank transfer 银行转账",
    "wallet": "Wallet 钱包",
    "alipay": "Alipay 支付宝",
    "wechat_pay": "WeChat Pay 微信支付",
}
STATUS_LABELS: Final = {
    "succeeded": "Paid 已支付",
    "pending": "Pending 处理中",
    "failed": "Failed 支付失败",
    "reversed": "Reversed 已冲正",
}

_registered = False


def _register_fonts() -> None:
    global _registered
    if not _registered:
        pdfmetrics.registerFont(UnicodeCIDFont(CJK_FONT))
        _registered = True


def markup(text: str, *, bold: bool = False) -> str:
    """Escape ``text`` for a reportlab Paragraph, switching fonts per script.

    Runs of Latin-1 characters keep the paragraph's Latin font; every other run
    (Chinese, full-width punctuation...) is wrapped in ``<font name="STSong-Light">``.
    Control characters are dropped.

    Args:
        text: Plain text (not markup).
        bold: Whether Latin runs are bold (the CJK font has one weight).
    """
    out: list[str] = []
    run: list[str] = []
    run_cjk: bool | None = None

    def flush() -> None:
        if not run:
            return
        chunk = escape("".join(run))
        if run_cjk:
            out.append(f'<font name="{CJK_FONT}">{chunk}</font>')
        else:
            out.append(f"<b>{chunk}</b>" if bold else chunk)
        run.clear()

    for ch in text:
        if ch in "\r\n\t":
            ch = " "
        elif not ch.isprintable():
            continue
        cjk = ord(ch) > 0xFF
        if run and cjk != run_cjk:
            flush()
        run_cjk = cjk
        run.append(ch)
    flush()
    return "".join(out)


def money(amount: Decimal, currency: str = "") -> str:
    """Format ``amount`` with thousands separators and two places, e.g. ``CNY 1,234.50``."""
    text = f"{amount.quantize(Decimal('0.01')):,.2f}"
    return f"{currency} {text}" if currency else text


def _period(allocation: ReceiptAllocation) -> str:
    if allocation.description:
        return allocation.description
    if allocation.period_start and allocation.period_end:
        return f"{allocation.period_start:%Y-%m-%d} – {allocation.period_end:%Y-%m-%d}"
    return "Credit 预存"


def _styles() -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("base", fontName=LATIN_FONT, fontSize=10, leading=14)
    return {
        "base": base,
        "title": ParagraphStyle("title", parent=base, fontName=LATIN_BOLD, fontSize=18, leading=24),
        "sub": ParagraphStyle("sub", parent=base, fontSize=12, leading=16),
        "label": ParagraphStyle("label", parent=base, textColor=colors.HexColor("#555555")),
        "right": ParagraphStyle("right", parent=base, alignment=TA_RIGHT),
        "total": ParagraphStyle(
            "total", parent=base, fontName=LATIN_BOLD, fontSize=14, leading=20, alignment=TA_RIGHT
        ),
        "small": ParagraphStyle(
            "small", parent=base, fontSize=8, leading=11, textColor=colors.HexColor("#666666")
        ),
    }


def _watermark(status: str) -> Callable[[Any, Any], None]:
    label = {"pending": "PENDING", "failed": "FAILED", "reversed": "REVERSED"}.get(
        status, status.upper()[:20]
    )

    def draw(canvas: Any, _doc: Any) -> None:
        canvas.saveState()
        canvas.setFont(LATIN_BOLD, 72)
        canvas.setFillColor(colors.Color(0.85, 0.1, 0.1, alpha=0.18))
        canvas.translate(A4[0] / 2, A4[1] / 2)
        canvas.rotate(35)
        canvas.drawCentredString(0, 0, label)
        canvas.restoreState()

    return draw


def render_receipt_pdf(receipt: ReceiptData, *, compress: bool = True) -> bytes:
    """Render ``receipt`` as an A4 PDF (one page, more for very long lists) and return it.

    Args:
        receipt: What to print.
        compress: Deflate the page streams (the default). Turn it off to grep
            the raw PDF in tests.

    Returns:
        The PDF document (starts with ``%PDF-``), identical for identical input.
    """
    _register_fonts()
    st = _styles()

    def p(text: str, style: str = "base", *, bold: bool = False) -> Paragraph:
        return Paragraph(markup(text, bold=bold), st[style])

    story: list[Any] = [
        p("Payment Receipt 付款收据", "title"),
        p(receipt.community, "sub"),
        Spacer(1, 6 * mm),
    ]

    details = [
        ("Receipt no. 收据编号", receipt.receipt_no),
        ("Issued 开具时间", receipt.issued_at.strftime("%Y-%m-%d %H:%M %Z").strip()),
        ("Unit 房号", receipt.unit),
        ("Household 户号", receipt.household_id),
        ("Payer 付款人", receipt.payer),
        ("Method 付款方式", METHOD_LABELS.get(receipt.method, receipt.method)),
        ("Gateway reference 交易流水号", receipt.gateway_reference),
        ("Status 状态", STATUS_LABELS.get(receipt.status, receipt.status)),
    ]
    if receipt.payment_id:
        details.insert(4, ("Payment ID 付款编号", receipt.payment_id))
    detail_table = Table(
        [[p(label, "label"), p(value)] for label, value in details],
        colWidths=[55 * mm, 115 * mm],
    )
    detail_table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#DDDDDD")),
            ]
        )
    )
    story += [detail_table, Spacer(1, 8 * mm)]

    rows: list[list[Paragraph]] = [
        [
            p("Item 项目", bold=True),
            p("Period 账期", bold=True),
            p("Amount 金额", "right", bold=True),
        ]
    ]
    for allocation in receipt.allocations:
        rows.append(
            [
                p(UTILITY_LABELS.get(allocation.utility, allocation.utility)),
                p(_period(allocation)),
                p(money(allocation.amount), "right"),
            ]
        )
    unallocated = receipt.amount - receipt.allocated
    if unallocated > 0:
        rows.append(
            [
                p("Credit 预存"),
                p("Kept for future bills 用于抵扣后续账单"),
                p(money(unallocated), "right"),
            ]
        )
    rows.append(
        [
            p("Total paid 实付金额", bold=True),
            p(""),
            p(money(receipt.amount, receipt.currency), "right", bold=True),
        ]
    )
    alloc_table = Table(rows, colWidths=[50 * mm, 80 * mm, 40 * mm], repeatRows=1)
    alloc_table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#EEF2F7")),
                ("LINEBELOW", (0, 0), (-1, 0), 0.75, colors.HexColor("#334155")),
                ("LINEABOVE", (0, -1), (-1, -1), 0.75, colors.HexColor("#334155")),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    story += [alloc_table, Spacer(1, 6 * mm)]
    story.append(p(f"Amount paid 实付: {money(receipt.amount, receipt.currency)}", "total"))
    if receipt.notes:
        story += [Spacer(1, 6 * mm), p(f"Notes 备注: {receipt.notes}")]
    story += [
        Spacer(1, 12 * mm),
        p(
            "This receipt was issued electronically by billtalk and is valid without a seal. "
            "本收据由系统电子开具，无需盖章。",
            "small",
        ),
    ]

    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
        title=f"Receipt {receipt.receipt_no}",
        author=receipt.community,
        subject="Payment receipt",
        creator="billtalk",
        invariant=1,
        pageCompression=1 if compress else 0,
    )
    on_page = _watermark(receipt.status) if receipt.status != "succeeded" else _no_op
    doc.build(story, onFirstPage=on_page, onLaterPages=on_page)
    return buffer.getvalue()


def _no_op(_canvas: Any, _doc: Any) -> None:
    return None
