"""billtalk's NLU engine: intents, entities and out-of-scope detection (English + Chinese).

Public API::

    import nlu

    model = nlu.load_model()            # the shipped default model (trained if missing)
    result = model.parse("hw much is my electrcity bil")
    result["intent"]["name"]            # "check_balance"
    result["entities"]                  # [{"entity": "utility", "value": "electricity", ...}]

    nlu.train(["nlu/data"], "var/nlu/mine")   # train from Rasa 3 NLU YAML

Parse results follow Rasa's ``/model/parse`` JSON (see ``NluModel.parse``). With
``BILLTALK_NLU_BACKEND=rasa``, :func:`load_model` returns a :class:`RasaHttpModel`
that asks a running Rasa server instead.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nlu.model import NluModel
    from nlu.rasa_backend import RasaHttpModel

__all__ = [
    "DATA_DIR",
    "default_model_dir",
    "ensure_default_model",
    "load_model",
    "train",
]

#: The shipped training data (Rasa 3 NLU YAML, English + Chinese).
DATA_DIR = Path(__file__).resolve().parent / "data"

_default_lock = threading.Lock()


def default_model_dir() -> Path:
    """Folder of the default model: ``<data_dir>/nlu/default``."""
    from billtalk.settings import get_settings

    return get_settings().data_dir / "nlu" / "default"


def _default_is_current(model_dir: Path) -> bool:
    import json

    from nlu.rasa_yaml import load_training_data

    meta_path = model_dir / "metadata.json"
    if not meta_path.is_file():
        return False
    from nlu.model import ENGINE_VERSION

    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        trained_on = meta["training_data"]["sha256"]
        engine = meta["engine_version"]
    except (ValueError, KeyError, TypeError):
        return False
    return bool(
        engine == ENGINE_VERSION and trained_on == load_training_data(DATA_DIR).fingerprint()
    )


def ensure_default_model(*, progress: bool = True) -> Path:
    """Train the default model from :data:`DATA_DIR` if it is missing or out of date
    (its training-data hash differs from the current ``nlu/data``, or it was trained by
    another engine version); return its folder."""
    import fcntl

    from nlu.train import train as _train

    model_dir = default_model_dir()
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    # Several processes (the API, the bot, test sessions) may start at once: one
    # trains, the others wait on the file lock and then find the model current.
    with _default_lock, (model_dir.parent / ".default.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not _default_is_current(model_dir):
                _train([DATA_DIR], model_dir, progress=progress)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return model_dir


def load_model(model_dir: Path | None = None) -> NluModel | RasaHttpModel:
    """Load a trained model.

    Args:
        model_dir: A folder written by :func:`train`; ``None`` loads the default model
            (training it from ``nlu/data`` first if missing or stale) — or, with
            ``BILLTALK_NLU_BACKEND=rasa``, a client of the configured Rasa server.

    Raises:
        nlu.model.ModelFileError: If the folder is not a valid, untampered model.
    """
    from nlu.model import load_model_dir
    from nlu.settings import get_nlu_settings

    settings = get_nlu_settings()
    if model_dir is None and settings.backend == "rasa":
        from nlu.rasa_backend import RasaHttpModel

        return RasaHttpModel(
            settings.rasa_url, settings.rasa_token, timeout_s=settings.rasa_timeout_s
        )
    if model_dir is None:
        model_dir = ensure_default_model()
    return load_model_dir(Path(model_dir))


def train(data_paths: Any, out_dir: Path | str | None, **kwargs: Any) -> NluModel:
    """Train a model from Rasa NLU YAML files/folders into ``out_dir``; see
    :func:`nlu.train.train` for the options. Shows a progress bar on stderr."""
    from nlu.train import train as _train

    return _train(data_paths, out_dir, **kwargs)
