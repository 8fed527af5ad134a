"""Where tracked frames go in an offline or debug run: JSON lines and an annotated video."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np

from edge.detections import Detections, ObjectClass
from edge.sources import Frame
from roadwatch.errors import UserError
from roadwatch.files import partial_path

# BGR colours per class, chosen to stay apart on a grey road.
COLOURS: dict[ObjectClass, tuple[int, int, int]] = {
    ObjectClass.CAR: (255, 128, 0),
    ObjectClass.MOTORCYCLE: (0, 220, 0),
    ObjectClass.BUS: (0, 200, 255),
    ObjectClass.TRUCK: (255, 0, 200),
    ObjectClass.BICYCLE: (255, 255, 0),
    ObjectClass.PERSON: (0, 0, 255),
}


def frame_record(frame: Frame, tracks: Detections) -> dict[str, Any]:
    ids = tracks.tracker_id if tracks.tracker_id is not None else np.zeros(0, np.int64)
    return {
        "camera": frame.camera,
        "frame": frame.index,
        "captured_at": frame.captured_at.isoformat().replace("+00:00", "Z"),
        "tracks": [
            {
                "track_id": int(tid),
                "class": label,
                "confidence": round(float(conf), 4),
                "box": [round(float(v), 1) for v in box],
            }
            for tid, label, conf, box in zip(
                ids.tolist(), tracks.labels, tracks.confidence, tracks.xyxy, strict=True
            )
        ],
    }


def _finish(partial: Path, path: Path, keep: bool) -> None:
    """Rename a finished output into place, or drop an unfinished one: the file of an earlier
    run stays as it was until this one has written its own."""
    if not keep:
        partial.unlink(missing_ok=True)
        return
    try:
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {exc.strerror}") from exc


class TrackLog:
    """One JSON object per frame: camera, frame, captured_at, tracks[track_id, class, ...].
    Written beside ``path`` and renamed to it by ``close()``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._partial = partial_path(path)
        try:
            self._fh: IO[str] = self._partial.open("w", encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot write {path}: {exc.strerror}") from exc

    def write(self, frame: Frame, tracks: Detections) -> None:
        self._fh.write(json.dumps(frame_record(frame, tracks), separators=(",", ":")) + "\n")

    def close(self, keep: bool = True) -> None:
        """Put the log in place (``keep``), or drop it (the run failed)."""
        self._fh.close()
        _finish(self._partial, self.path, keep)


def draw_tracks(image: np.ndarray, tracks: Detections) -> np.ndarray:
    out = image.copy()
    ids = tracks.tracker_id
    for i in range(len(tracks)):
        x1, y1, x2, y2 = (round(float(v)) for v in tracks.xyxy[i])
        cls = ObjectClass(int(tracks.class_id[i]))
        colour = COLOURS[cls]
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, 2)
        label = cls.label if ids is None else f"{int(ids[i])} {cls.label}"
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        cv2.rectangle(out, (x1, max(0, y1 - th - 4)), (x1 + tw + 2, y1), colour, -1)
        cv2.putText(out, label, (x1 + 1, y1 - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    return out


class AnnotatedVideo:
    """An MP4 of the frames with each track's box, id and class drawn on it. Written beside
    ``path`` and renamed to it by ``close()``."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path = path
        self.fps = fps
        self._partial = partial_path(path)
        self._writer: cv2.VideoWriter | None = None

    def write(self, frame: Frame, tracks: Detections) -> None:
        image = draw_tracks(frame.image, tracks)
        if self._writer is None:
            h, w = image.shape[:2]
            fourcc = cv2.VideoWriter.fourcc(*"mp4v")
            self._writer = cv2.VideoWriter(str(self._partial), fourcc, self.fps, (w, h))
            if not self._writer.isOpened():
                self._partial.unlink(missing_ok=True)
                raise UserError(f"cannot write video {self.path}")
        self._writer.write(image)

    def close(self, keep: bool = True) -> None:
        """Put the video in place (``keep``), or drop it (the run failed)."""
        if self._writer is not None:
            self._writer.release()
            _finish(self._partial, self.path, keep)
