"""``billtalk face``: enroll, verify and delete face templates.

``billtalk face verify`` follows ``CONTRACTS.md`` exactly: one JSON line per
probe on stdout, in order, and exit code 2 if any probe could not be judged.
Heavy libraries (dlib, PyAV) are imported inside the commands.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from biometrics.cli_output import emit, require_resident

face_app = typer.Typer(
    name="face",
    help="Face verification: enroll photos, compare photos, delete templates.",
    no_args_is_help=True,
)


class _UsageError(ValueError):
    """A malformed ``face verify`` command line."""


def _split_lists(tokens: list[str]) -> dict[str, list[str]]:
    """Parse ``--enrolled A B --probe C D`` (space-separated lists; repeats allowed)."""
    lists: dict[str, list[str]] = {"--enrolled": [], "--probe": []}
    current: str | None = None
    for token in tokens:
        name, eq, value = token.partition("=")
        if name in lists:
            current = name
            if eq:
                lists[name].append(value)
        elif token.startswith("--") and current is None:
            raise _UsageError(f"unknown option {token}")
        elif current is None:
            raise _UsageError(f"{token!r}: put images after --enrolled or --probe")
        else:
            lists[current].append(token)
    return lists


@face_app.command(
    "verify",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def verify_command(ctx: typer.Context) -> None:
    """Compare probe photos with enrolled photos of one person.

    Usage: ``billtalk face verify --enrolled IMG [IMG ...] --probe IMG [IMG ...]``

    Prints one JSON line per probe, in order: ``{"probe", "match", "distance",
    "threshold"}``, where ``distance`` is the Euclidean distance to the nearest
    enrolled photo and ``threshold`` the shipped one (``BILLTALK_FACE_THRESHOLD``,
    the same the step-up verification uses). A probe that cannot be judged (no
    face, several faces, too small, corrupt...) gets ``{"probe", "error": {"code",
    "message"}}`` and the exit code is 2. An unusable enrolled photo is reported
    on stderr with exit code 1, as is a malformed command line.
    """
    import numpy as np

    from biometrics.face.errors import FaceError
    from biometrics.face.matching import best_distance
    from biometrics.face.service import observe
    from biometrics.face.settings import get_face_settings

    # Usage errors exit with 1, not click's 2: 2 means "a probe could not be judged".
    try:
        lists = _split_lists(list(ctx.args))
        if not lists["--enrolled"] or not lists["--probe"]:
            raise _UsageError("give at least one --enrolled image and one --probe image")
    except _UsageError as exc:
        sys.stderr.write(
            f"usage: billtalk face verify --enrolled IMG [IMG ...] --probe IMG [IMG ...]\n{exc}\n"
        )
        raise typer.Exit(1) from None
    settings = get_face_settings()
    vectors = []
    for path in lists["--enrolled"]:
        try:
            obs = observe(Path(path), settings)
        except FaceError as exc:
            sys.stderr.write(json.dumps({"enrolled": path, "error": exc.to_dict()}) + "\n")
            raise typer.Exit(1) from None
        assert obs.encoding is not None
        vectors.append(obs.encoding)
    template = np.vstack(vectors)
    failed = False
    for path in lists["--probe"]:
        try:
            probe = observe(Path(path), settings)
        except FaceError as exc:
            failed = True
            emit({"probe": path, "error": exc.to_dict()})
            continue
        assert probe.encoding is not None
        distance = best_distance(template, probe.encoding)
        emit(
            {
                "probe": path,
                "match": bool(distance <= settings.threshold),
                "distance": round(distance, 4),
                "threshold": settings.threshold,
            }
        )
    if failed:
        raise typer.Exit(2)


@face_app.command("enroll")
def enroll_command(
    images: list[Path] = typer.Argument(..., help="1 to 5 photos of the resident's face."),
    resident: str = typer.Option(..., "--resident", help="The resident's id."),
    actor: str = typer.Option("cli", "--actor", help="Who enrolls, for the audit trail."),
) -> None:
    """Enroll a resident's face from 1-5 photos (replaces any previous template).

    Prints ``{"resident_id", "samples", "max_pair_distance"}``. An unusable
    photo prints ``{"error": {"code", "message", "index"}}`` and exits with 2;
    so does a resident the billing database does not know (``unknown_resident``).
    The template is stored encrypted; it is never printed.
    """
    from biometrics.face.service import EnrollmentError, enroll
    from biometrics.store import TemplateStore

    require_resident(resident)
    store = TemplateStore.from_settings()
    try:
        result = enroll(store, resident, images, actor=actor)
    except EnrollmentError as exc:
        emit({"error": {**exc.to_dict(), "index": exc.index}})
        raise typer.Exit(2) from None
    emit(
        {
            "resident_id": result.resident_id,
            "samples": result.samples,
            "max_pair_distance": result.max_pair_distance,
        }
    )


@face_app.command("delete")
def delete_command(
    resident: str = typer.Option(..., "--resident", help="The resident's id."),
    actor: str = typer.Option("cli", "--actor", help="Who deletes, for the audit trail."),
) -> None:
    """Delete a resident's face template completely (audited).

    Prints ``{"resident_id", "removed"}``; an unknown resident exits with 2,
    unless a template of theirs is still stored (erasure is never refused).
    """
    from biometrics.face.service import KIND, delete
    from biometrics.store import TemplateStore

    require_resident(resident, erasing=KIND)
    removed = delete(TemplateStore.from_settings(), resident, actor=actor)
    emit({"resident_id": resident, "removed": removed})


def register(app: typer.Typer) -> None:
    """Mount ``billtalk face`` on ``app``."""
    app.add_typer(face_app, name="face")
