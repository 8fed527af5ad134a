"""One plate per track: a vote over the frames' readings, character by character.

Only readings the grammar accepted take part (an unreadable frame or a guess adds
nothing). The layout (format) with the most confidence wins; within it each character
position goes to the character with the largest summed confidence. The voted plate is
checked against the grammar again, so a mix of frames can never produce an impossible
plate (it falls back to the single most confident reading). The plate crop kept for the
evidence is the most confident frame that reads exactly the voted text.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edge.plates.grammar import FORMATS, clean, parse_written, to_wire_text
from edge.plates.reader import FrameRead
from roadwatch.contract import PlateColour, PlateReading

Image8 = npt.NDArray[np.uint8]

_FORMATS = {f.name: f for f in FORMATS}
MAX_KEPT = 32  # distinct readings whose best frame is kept, per track
UNREADABLE = PlateReading(text="", confidence=0.0, valid=False)


@dataclass(frozen=True)
class TrackPlate:
    """The track's plate and the crop that shows it best (None when unreadable)."""

    reading: PlateReading
    crop: Image8 | None
    frames: int  # frames that took part in the vote
    text: str = ""  # the voted plate as the grammar writes it (with Đ)


@dataclass
class _Layout:
    weight: float = 0.0
    count: int = 0
    lines: int = 1
    positions: list[dict[str, float]] = field(default_factory=list)
    colours: dict[PlateColour, float] = field(default_factory=lambda: defaultdict(float))


@dataclass
class PlateVote:
    """Collects one track's frame readings; :meth:`result` gives the voted plate."""

    frames: int = 0
    total_weight: float = 0.0
    _layouts: dict[str, _Layout] = field(default_factory=dict)
    _best: dict[str, tuple[float, FrameRead]] = field(default_factory=dict)

    def add(self, read: FrameRead) -> None:
        plate = read.plate
        if not plate.valid or plate.format is None or read.confidence <= 0.0:
            return
        chars = clean(plate.text)
        if len(chars) != len(read.char_confidence):
            return
        self.frames += 1
        self.total_weight += read.confidence
        layout = self._layouts.setdefault(plate.format, _Layout(lines=plate.lines))
        if not layout.positions:
            layout.positions = [defaultdict(float) for _ in chars]
        layout.weight += read.confidence
        layout.count += 1
        for slot, ch, conf in zip(layout.positions, chars, read.char_confidence, strict=True):
            slot[ch] += conf
        if read.colour is not PlateColour.UNKNOWN:
            layout.colours[read.colour] += read.confidence
        kept = self._best.get(plate.text)
        if kept is None or read.confidence > kept[0]:
            self._best[plate.text] = (read.confidence, read)
        if len(self._best) > MAX_KEPT:
            weakest = min(self._best, key=lambda text: self._best[text][0])
            del self._best[weakest]

    def result(self) -> TrackPlate:
        if not self._layouts:
            return TrackPlate(UNREADABLE, None, 0)
        name, layout = max(self._layouts.items(), key=lambda kv: kv[1].weight)
        chars = "".join(max(slot.items(), key=lambda kv: kv[1])[0] for slot in layout.positions)
        text = _FORMATS[name].render(chars)
        if not parse_written(text).valid:
            # the mix is no plate: take the single most confident reading of this layout
            text = max(
                (kept for kept in self._best.values() if kept[1].plate.format == name),
                key=lambda kept: kept[0],
            )[1].plate.text
            chars = clean(text)
        agreement = min(
            slot.get(ch, 0.0) / sum(slot.values())
            for slot, ch in zip(layout.positions, chars, strict=True)
        )
        share = layout.weight / self.total_weight
        confidence = float(np.clip(share * agreement * layout.weight / layout.count, 0.0, 1.0))
        colour = (
            max(layout.colours.items(), key=lambda kv: kv[1])[0]
            if layout.colours
            else PlateColour.UNKNOWN
        )
        # the evidence crop: the frame closest to the voted text, then the most confident
        _, shown = max(
            self._best.values(),
            key=lambda kept: (_same_chars(clean(kept[1].plate.text), chars), kept[0]),
        )
        reading = PlateReading(
            text=to_wire_text(text),
            confidence=confidence,
            valid=confidence > 0.0,
            colour=colour,
            lines=layout.lines,
        )
        return TrackPlate(reading, shown.plate_crop, self.frames, text)


def _same_chars(a: str, b: str) -> int:
    if len(a) != len(b):
        return -1
    return sum(x == y for x, y in zip(a, b, strict=True))
