"""Billing commands of the ``billtalk`` command line.

``demo seed``, ``bills generate``, ``payments reconcile``,
``reminders run``, ``receipts render``, ``ledger trial-balance``/``check``,
``tokens create`` and ``reports``. JSON goes to stdout; logs and progress bars to
stderr.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from billtalk.settings import get_settings

if TYPE_CHECKING:
    from backend.service_layer.unit_of_work import UnitOfWork

demo_app = typer.Typer(help="The demo community.", no_args_is_help=True)
bills_app = typer.Typer(help="Bill generation.", no_args_is_help=True)
payments_app = typer.Typer(help="Payments.", no_args_is_help=True)
reminders_app = typer.Typer(help="Arrears reminders.", no_args_is_help=True)
receipts_app = typer.Typer(help="Receipts.", no_args_is_help=True)
ledger_app = typer.Typer(help="The double-entry ledger.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens.", no_args_is_help=True)
reports_app = typer.Typer(help="Staff reports.", no_args_is_help=True)


def _print(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def _uow() -> UnitOfWork:
    from backend.bootstrap import ensure_database
    from backend.service_layer.unit_of_work import UnitOfWork

    url = get_settings().database_url
    ensure_database(url)
    return UnitOfWork.from_url(url)


def _parse_date(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{name} must be YYYY-MM-DD") from None


@demo_app.command("seed")
def demo_seed(
    households: Annotated[int, typer.Option("--households", help="How many households.")] = 40,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 7,
    months: Annotated[int, typer.Option("--months", help="Months of history.")] = 12,
    today: Annotated[
        str | None, typer.Option("--today", help="YYYY-MM-DD (default: today).")
    ] = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="Delete existing billing data first.")
    ] = False,
) -> None:
    """Create the deterministic demo community and print its JSON (see CONTRACTS.md)."""
    from tqdm import tqdm

    from backend.demo import SeedConflict
    from backend.demo import seed as run_seed

    day = _parse_date(today, "--today")
    bar = tqdm(total=households * (months + 1), desc="seeding", unit="step", file=sys.stderr)

    def set_total(n: int) -> None:
        bar.total = n
        bar.refresh()

    try:
        result = run_seed(
            get_settings().database_url,
            households=households,
            seed=seed,
            months=months,
            today=day,
            reset=reset,
            progress=bar.update,
            set_total=set_total,
        )
    except SeedConflict as exc:
        bar.close()
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except ValueError as exc:
        bar.close()
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if result.get("already_seeded"):
        bar.n = bar.total
        bar.set_description("already seeded")
    bar.close()
    _print(result)


@bills_app.command("generate")
def bills_generate(
    period: Annotated[str, typer.Argument(help="The month to bill, YYYY-MM.")],
    workers: Annotated[
        int, typer.Option(min=1, max=32, help="Worker processes (PostgreSQL only).")
    ] = 1,
) -> None:
    """Generate (idempotently) every household's bills for a month; autopay runs too."""
    from tqdm import tqdm

    from backend.domain.bills import parse_period
    from backend.gateway import get_gateway
    from backend.service_layer import services

    try:
        start, _ = parse_period(period)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    uow = _uow()
    with uow:
        from sqlalchemy import func, select

        from backend.adapters.orm import Household

        n = uow.session.scalar(select(func.count()).select_from(Household)) or 0
    with tqdm(total=n, desc=f"bills {period}", file=sys.stderr) as bar:
        report = services.generate_bills(
            uow, start, gateway=get_gateway(), progress=bar.update, workers=workers
        )
    _print(report.__dict__)


@payments_app.command("reconcile")
def payments_reconcile() -> None:
    """Settle pending payments by asking the gateway."""
    from backend.gateway import get_gateway
    from backend.service_layer import services

    _print(services.reconcile_pending(_uow(), get_gateway()))


@reminders_app.command("run")
def reminders_run(
    today: Annotated[str | None, typer.Option("--today", help="YYYY-MM-DD.")] = None,
) -> None:
    """Refresh bill statuses, charge late fees (if enabled) and queue due notices."""
    from backend.service_layer import services

    _print(services.run_reminders(_uow(), today=_parse_date(today, "--today")))


@receipts_app.command("render")
def receipts_render(
    payment_id: Annotated[str, typer.Argument(help="Payment id or receipt number.")],
    pdf: Annotated[Path, typer.Option("--pdf", help="Where to write the PDF.")],
) -> None:
    """Render a payment's receipt as PDF."""
    from sqlalchemy import select

    from backend.adapters.orm import Payment
    from backend.service_layer.errors import ServiceError
    from backend.service_layer.receipts import receipt_pdf

    uow = _uow()
    with uow:
        pid = uow.session.scalar(
            select(Payment.payment_id).where(
                (Payment.payment_id == payment_id) | (Payment.receipt_no == payment_id)
            )
        )
    try:
        data = receipt_pdf(uow, pid or payment_id)
    except ServiceError as exc:
        typer.echo(f"error: {exc.code}: {exc.message}", err=True)
        raise typer.Exit(2) from None
    pdf.write_bytes(data)
    _print({"payment_id": pid or payment_id, "pdf": str(pdf), "bytes": len(data)})


@ledger_app.command("trial-balance")
def ledger_trial_balance() -> None:
    """Print the trial balance."""
    from backend.service_layer import services

    _print(services.trial_balance(_uow()).model_dump(mode="json"))


@ledger_app.command("check")
def ledger_check() -> None:
    """Check every household's bills and credits against the ledger."""
    from backend.service_layer import services

    result = services.ledger_check(_uow())
    _print(result)
    if not result["consistent"]:
        raise typer.Exit(1)


@tokens_app.command("create")
def tokens_create(
    scope: Annotated[str, typer.Argument(help="service, staff or resident.")],
    name: Annotated[str, typer.Option(help="A label.")] = "",
    resident: Annotated[str | None, typer.Option(help="Resident id (resident scope).")] = None,
) -> None:
    """Create an API token (printed once; stored hashed)."""
    from backend.service_layer import services
    from backend.service_layer.errors import ServiceError

    try:
        out = services.issue_token(_uow(), scope, name=name, resident_id=resident)
    except ServiceError as exc:
        typer.echo(f"error: {exc.code}: {exc.message}", err=True)
        raise typer.Exit(2) from None
    _print(out.model_dump(mode="json"))


@reports_app.command("usage-revenue")
def reports_usage_revenue() -> None:
    """Usage and revenue by utility, building and month."""
    from backend.service_layer import services

    _print(services.report_usage_revenue(_uow()))


@reports_app.command("arrears")
def reports_arrears(
    today: Annotated[str | None, typer.Option("--today", help="YYYY-MM-DD.")] = None,
) -> None:
    """Households in arrears with aging buckets."""
    from backend.service_layer import services

    _print(services.report_arrears(_uow(), today=_parse_date(today, "--today")))


def register(app: typer.Typer) -> None:
    """Add the billing commands to ``app``."""
    app.add_typer(demo_app, name="demo")
    app.add_typer(bills_app, name="bills")
    app.add_typer(payments_app, name="payments")
    app.add_typer(reminders_app, name="reminders")
    app.add_typer(receipts_app, name="receipts")
    app.add_typer(ledger_app, name="ledger")
    app.add_typer(tokens_app, name="tokens")
    app.add_typer(reports_app, name="reports")
    from backend.security_cli import register as register_security

    register_security(app)
