"""``billtalk voice``: enroll, verify and delete voiceprints.

JSON goes to stdout, logs to stderr. Heavy libraries (torch, Resemblyzer,
pocketsphinx) are imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from biometrics.cli_output import emit, require_resident

#: ``voice verify`` enrolls from whatever recordings it is given, so it only asks
#: each to hold some speech; the probes must meet ``min_voiced_s``.
ENROLLED_MIN_VOICED_S = 0.25

voice_app = typer.Typer(
    help="Voice biometrics: enroll a resident, compare recordings, delete templates.",
    no_args_is_help=True,
)


@voice_app.command("enroll")
def enroll_command(
    audio: Annotated[list[Path], typer.Argument(help="The enrollment recordings.")],
    resident: Annotated[str, typer.Option("--resident", help="Resident id to enroll.")],
    digits: Annotated[
        list[str] | None,
        typer.Option(
            "--digits",
            help="The digits prompted for each recording (6 or more), once per file, in order.",
        ),
    ] = None,
    no_digit_check: Annotated[
        bool,
        typer.Option(
            "--no-digit-check",
            help="Staff import of recordings whose prompts are unknown (audited as such).",
        ),
    ] = False,
    actor: Annotated[str, typer.Option(help="Who enrolls, for the audit trail.")] = "staff:cli",
) -> None:
    """Enroll a resident's voice from prompted digit recordings (five by default).

    Each recording must say its ``--digits`` unless ``--no-digit-check`` is
    given, checked as in the chat enrollment and the step-up
    (:func:`biometrics.voice.enrollment.check_prompt`: with the default
    likelihood check the prompts need at least 6 digits, else the refusal is
    ``prompt_too_short``). Prints ``{"resident_id", "samples",
    "voiced_s", "digits_checked"}``; on refusal (including a resident the
    billing database does not know, ``unknown_resident``) prints
    ``{"error": {"code", "message"}}`` and exits with 2.
    """
    from biometrics.store import TemplateStore
    from biometrics.voice.enrollment import EnrollmentError, EnrollmentSample, enroll

    require_resident(resident)
    prompts = list(digits or [])
    if not no_digit_check and len(prompts) != len(audio):
        emit(
            {
                "error": {
                    "code": "missing_digits",
                    "message": f"give --digits once per recording ({len(audio)} files, "
                    f"{len(prompts)} --digits), or --no-digit-check for a staff import",
                }
            }
        )
        raise typer.Exit(2)
    samples = [
        EnrollmentSample(path, prompts[i] if i < len(prompts) else None)
        for i, path in enumerate(audio)
    ]
    store = TemplateStore.from_settings()
    try:
        report = enroll(
            store, resident, samples, actor=actor, check_prompted_digits=not no_digit_check
        )
    except EnrollmentError as exc:
        error: dict[str, Any] = {"code": exc.code, "message": exc.message}
        if exc.index is not None:
            error["file"] = str(audio[exc.index])
        emit({"error": error})
        raise typer.Exit(2) from None
    emit(
        {
            "resident_id": report.resident_id,
            "samples": report.samples,
            "voiced_s": report.voiced_s,
            "digits_checked": report.digits_checked,
        }
    )


def split_lists(tokens: list[str], names: tuple[str, ...]) -> dict[str, list[str]]:
    """Parse ``--name V [V ...]`` groups, as in ``--enrolled A B --probe C D``.

    Click options take one value each; the contract's multi-value options are
    parsed here. ``--name=V`` and repeated groups are accepted too.

    Raises:
        typer.BadParameter: A value before any option, or an unknown option.
    """
    groups: dict[str, list[str]] = {name: [] for name in names}
    current: str | None = None
    for token in tokens:
        name, eq, value = token.partition("=")
        if token.startswith("--") and name in groups:
            current = name
            if eq:
                groups[name].append(value)
        elif token.startswith("--") and not token.startswith("---") and current is None:
            raise typer.BadParameter(f"unknown option {token}")
        elif current is None:
            raise typer.BadParameter(f"{token}: expected one of {', '.join(names)} first")
        else:
            groups[current].append(token)
    return groups


@voice_app.command(
    "verify",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
def verify_command(
    tokens: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="--enrolled AUDIO [AUDIO ...] --probe AUDIO [AUDIO ...]",
            help="Recordings of the known speaker, then the recordings to compare.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Compare probe recordings with a speaker enrolled from recordings.

    Prints one JSON line per probe, in order: ``{"probe", "match", "score",
    "threshold"}``, or ``{"probe", "error": {"code", "message"}}`` for audio that is
    too short, silent, noise only or corrupt (then the exit code is 2). The
    speaker model is the one new enrollments use (``BILLTALK_VOICE_ENROLL_MODEL``,
    CAM++ by default) and the threshold that model's, the same one the dialogue's
    step-up uses for such a template. Digits are not checked here (there is no challenge).
    Each ``--enrolled`` recording only needs to contain speech; one that does
    not is reported on stderr and the command exits with 2 before any probe.
    """
    groups = split_lists(list(tokens or []), ("--enrolled", "--probe"))
    enrolled = [Path(p) for p in groups["--enrolled"]]
    probe = [Path(p) for p in groups["--probe"]]
    if not enrolled or not probe:
        raise typer.BadParameter("give --enrolled AUDIO [AUDIO ...] and --probe AUDIO [AUDIO ...]")
    import torch

    from biometrics.voice.audio import VoiceAudioError
    from biometrics.voice.settings import get_voice_settings
    from biometrics.voice.voiceprint import pooled_template, score, voiceprint_of

    torch.set_num_threads(1)
    settings = get_voice_settings()
    model = settings.enroll_model
    threshold = settings.threshold(model)
    prints = []
    for path in enrolled:
        try:
            prints.append(voiceprint_of(path, min_voiced_s=ENROLLED_MIN_VOICED_S, model=model))
        except VoiceAudioError as exc:
            typer.echo(f"enrolled recording {path}: {exc.code}: {exc.message}", err=True)
            raise typer.Exit(2) from None
    # All enrolled speech embedded as one utterance, as enrollment does.
    template = pooled_template(prints)
    failed = False
    for path in probe:
        try:
            vp = voiceprint_of(path, min_voiced_s=settings.min_voiced_s, model=model)
        except VoiceAudioError as exc:
            failed = True
            emit({"probe": str(path), "error": {"code": exc.code, "message": exc.message}})
            continue
        value = round(score(template, vp), 4)
        emit(
            {
                "probe": str(path),
                "match": value >= threshold,
                "score": value,
                "threshold": threshold,
            }
        )
    if failed:
        raise typer.Exit(2)


@voice_app.command("delete")
def delete_command(
    resident: Annotated[str, typer.Option("--resident", help="Resident whose voice to delete.")],
    actor: Annotated[str, typer.Option(help="Who deletes, for the audit trail.")] = "staff:cli",
) -> None:
    """Delete a resident's voice template (audited). Prints ``{"resident_id", "removed"}``.

    A resident the billing database does not know is refused (exit code 2),
    unless a template of theirs is still stored (erasure is never refused).
    """
    from biometrics.store import TemplateStore
    from biometrics.voice.enrollment import KIND

    require_resident(resident, erasing=KIND)
    removed = TemplateStore.from_settings().delete(resident, KIND, actor=actor)
    emit({"resident_id": resident, "removed": removed})


def register(app: typer.Typer) -> None:
    """Add the ``voice`` command group to ``app``."""
    app.add_typer(voice_app, name="voice")
