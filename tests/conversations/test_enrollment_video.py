"""Face enrollment from a round video note, in the conversation (issue 18).

The video note is real video (H.264 MP4 at Telegram's 384 px square) made from
real photos of one person in ``../shared/data/faces``: each photo is shown for a
second, as a resident turning slightly between takes would be. The engine,
NLU, billing database, template store and face pipeline are the real ones.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from biometrics.face.images import load_image
from biometrics.face.matching import best_distance
from biometrics.face.service import observe
from biometrics.face.settings import FaceSettings
from bot.messages import Attachment
from tests.conversations.test_enrollment import (
    Chat,
    _pair_photos,
    _verified_enrollment_menu,
    image,
    templates,
)
from tests.face import synth


def video_note(photos: list[Path], seconds_each: float = 1.0) -> Attachment:
    """A round video note (MP4) showing each real photo's face crop in turn."""
    frames = []
    for path in photos:
        crop = synth.face_crop(load_image(path).rgb)
        frames += [crop] * int(seconds_each * synth.FPS)
    return Attachment("video", synth.encode_clip(frames, synth.FPS), "note.mp4", "video/mp4")


async def test_a_resident_enrolls_the_face_from_one_video_note(
    make_engine: Callable[..., Any], seeded: Any, shared_data: Path
) -> None:
    engine = make_engine()
    resident_id = seeded.roles["payer"]["resident_id"]
    chat = Chat(engine, resident_id)
    obama = _pair_photos(shared_data, "barack_obama")
    other = _pair_photos(shared_data, "kit_harington")

    await _verified_enrollment_menu(chat)
    reply = await chat.press("face")
    assert "round video note" in reply, reply
    # Selfies first: the one of the resident will join the video's gallery, the other not.
    reply = await chat.send(files=(image(obama[3]), image(other[2])))
    assert "2 of at most" in reply, reply

    # A clip cutting between two people enrolls nobody, and says why.
    reply = await chat.send(files=(video_note([obama[0], other[0]] * 2),))
    assert "couldn't use that video note" in reply and "same person" in reply, reply
    assert not templates(engine).is_enrolled(resident_id, "face")

    reply = await chat.send(files=(video_note([obama[0], obama[2]]),))
    assert "face is enrolled" in reply and "frames of your video note" in reply, reply
    assert "1 of the photos you sent before" in reply, reply
    store = templates(engine)
    gallery = store.load(resident_id, "face")
    assert gallery is not None and 3 <= gallery.shape[0] <= 4  # 2-3 frames and the selfie
    trail = store.audit_trail(resident_id)
    assert trail[-1]["action"] == "enroll" and trail[-1]["actor"] == f"resident:{resident_id}"
    # The gallery recognises a photo that was not in the video, and not someone else.
    settings = FaceSettings()
    unseen = observe(obama[1], settings).encoding
    stranger = observe(other[1], settings).encoding
    assert unseen is not None and stranger is not None
    assert best_distance(gallery, unseen) <= settings.threshold
    assert best_distance(gallery, stranger) > settings.threshold
    assert np.isfinite(gallery).all()
