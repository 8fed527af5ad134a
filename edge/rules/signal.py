"""Signal state: from the lamp image and from the external controller, with phase history.

The lamp reading compares the three lamp regions with each other rather than against
fixed thresholds: the lit lamp is the one whose colour strength (max - min channel, high
for a saturated lit lamp, low for a dark housing and for washed-out glare) stands out from
the other two. Hysteresis (a higher ratio to turn a lamp on than to keep it on) and a
minimum dwell keep single noisy frames from flipping the state; the phase's start is
back-dated to the first frame of the new reading.

A controller message (``SignalPhase``) is authoritative while fresh (younger than
``controller_ttl_s`` by its ``sent_at``); once stale, the lamp reading takes over again,
from the moment the controller went stale: a lamp reading begun earlier never replaces
what the controller said while it was fresh, and a lamp that reads nothing then (glare)
leaves the phase unknown rather than the controller's last. A head with no lamp regions
is known only from the controller: its phase is unknown before the first message and
once the last is stale, so a silent controller never leaves a red standing.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from edge.rules.scene import LampSettings, SignalHead
from roadwatch.contract import LampColour, SignalPhase, SignalSource

LIT = (LampColour.RED, LampColour.YELLOW, LampColour.GREEN)
# The phase each lit phase gives way to: a controller message reporting any other phase
# than the last one's successor, begun after the last message, means phases went unheard.
NEXT_PHASE = {
    LampColour.RED: LampColour.GREEN,
    LampColour.GREEN: LampColour.YELLOW,
    LampColour.YELLOW: LampColour.RED,
}


@dataclass(frozen=True, slots=True)
class LampStrengths:
    """Colour strength (0-255) of each lamp region of one frame."""

    red: float
    yellow: float
    green: float

    def of(self, colour: LampColour) -> float:
        if colour is LampColour.RED:
            return self.red
        if colour is LampColour.YELLOW:
            return self.yellow
        return self.green


def lamp_strengths(
    image: NDArray[np.uint8], head: SignalHead, origin: tuple[int, int] = (0, 0)
) -> LampStrengths:
    """Measure a BGR frame's lamp regions: mean of the brighter half of max-min channel.

    ``image`` may be a part of the frame whose top-left corner is at ``origin``."""
    ox, oy = origin

    def strength(rect: tuple[int, int, int, int]) -> float:
        x0, y0, x1, y1 = rect
        x0, y0, x1, y1 = max(0, x0 - ox), max(0, y0 - oy), max(0, x1 - ox), max(0, y1 - oy)
        patch = image[y0:y1, x0:x1].reshape(-1, image.shape[2]).astype(np.int16)
        if patch.size == 0:
            return 0.0
        chroma = np.sort(patch.max(axis=1) - patch.min(axis=1))
        return float(chroma[chroma.size // 2 :].mean())

    lamps = head.lamps()
    if lamps is None:
        raise ValueError(f"signal head {head.id!r} has no lamp regions")
    return LampStrengths(*(strength(r) for r in lamps))


def lamp_region(head: SignalHead) -> tuple[int, int, int, int]:
    """The rectangle that holds all of a head's lamps (x0, y0, x1, y1)."""
    lamps = head.lamps()
    if lamps is None:
        raise ValueError(f"signal head {head.id!r} has no lamp regions")
    return (
        min(r[0] for r in lamps), min(r[1] for r in lamps),
        max(r[2] for r in lamps), max(r[3] for r in lamps),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class LampReading:
    colour: LampColour
    began_at: float


class LampReader:
    """Turns per-frame lamp strengths into a stable colour with hysteresis and dwell."""

    def __init__(self, settings: LampSettings) -> None:
        self._s = settings
        self._stable = LampReading(LampColour.UNKNOWN, float("-inf"))
        self._candidate: LampReading | None = None

    @property
    def reading(self) -> LampReading:
        return self._stable

    def raw(self, x: LampStrengths) -> LampColour:
        """This frame's colour alone, with hysteresis towards the stable colour."""
        values = {c: x.of(c) for c in LIT}
        if max(values.values()) < self._s.min_strength:
            return LampColour.OFF
        current = self._stable.colour
        if current in LIT:
            others = max(v for c, v in values.items() if c is not current)
            if values[current] >= self._s.exit_ratio * max(others, 1.0):
                return current
        best = max(LIT, key=lambda c: values[c])
        others = max(v for c, v in values.items() if c is not best)
        if values[best] >= self._s.enter_ratio * max(others, 1.0):
            return best
        return LampColour.UNKNOWN

    def update(self, t: float, x: LampStrengths) -> LampReading:
        colour = self.raw(x)
        if colour is self._stable.colour:
            self._candidate = None
            return self._stable
        if self._candidate is None or self._candidate.colour is not colour:
            self._candidate = LampReading(colour, t)
        if t - self._candidate.began_at >= self._s.min_dwell_s:
            self._stable, self._candidate = self._candidate, None
        return self._stable


@dataclass(frozen=True, slots=True)
class PhaseSpan:
    colour: LampColour
    began_at: float
    source: SignalSource


class PhaseHistory:
    """Recent phases of one signal head, oldest first; answers 'what was it at time t'."""

    def __init__(self, horizon_s: float = 600.0, max_spans: int = 256) -> None:
        self._horizon_s = horizon_s
        self._spans: deque[PhaseSpan] = deque(maxlen=max_spans)

    @property
    def spans(self) -> tuple[PhaseSpan, ...]:
        return tuple(self._spans)

    def record(self, colour: LampColour, began_at: float, source: SignalSource) -> None:
        """Record that ``colour`` began at ``began_at``.

        The controller may correct history (a later-starting conflicting span is replaced);
        a lamp reading never rewrites what is already recorded.
        """
        if source is SignalSource.LAMP and self._spans:
            began_at = max(began_at, self._spans[-1].began_at)
        if self._spans and self._spans[-1].colour is colour:
            last = self._spans[-1]
            if source is SignalSource.CONTROLLER and last.began_at != began_at:
                self._spans[-1] = PhaseSpan(colour, began_at, source)
            return
        while self._spans and self._spans[-1].began_at > began_at:
            self._spans.pop()
        if self._spans and self._spans[-1].colour is colour:
            return
        self._spans.append(PhaseSpan(colour, began_at, source))
        while len(self._spans) > 1 and self._spans[1].began_at < began_at - self._horizon_s:
            self._spans.popleft()

    def span_at(self, t: float) -> PhaseSpan | None:
        for span in reversed(self._spans):
            if span.began_at <= t:
                return span
        return None

    def phase_at(self, t: float) -> LampColour:
        span = self.span_at(t)
        return LampColour.UNKNOWN if span is None else span.colour

    def red_began(self, t: float) -> float | None:
        """When the red phase in force at ``t`` began; None when it was not red at ``t``."""
        span = self.span_at(t)
        if span is None or span.colour is not LampColour.RED:
            return None
        return span.began_at

    def source_at(self, t: float) -> SignalSource | None:
        span = self.span_at(t)
        return None if span is None else span.source

    def told_until(self) -> float:
        """A history given whole (a recording's labelled phases) is known to its end."""
        return float("inf")

    def time_since_red(self, t: float) -> float | None:
        began = self.red_began(t)
        return None if began is None else t - began


class SignalState:
    """One signal head's phase from its lamp image and from the controller."""

    def __init__(self, head: str, settings: LampSettings, *, lamps: bool = True) -> None:
        self.head = head
        self._settings = settings
        self._lamps = lamps  # (False: a head only the controller reports)
        # The spans of time [from, to] the controller's messages cover (each message
        # +-controller_ttl_s), oldest first: a head only the controller reports is known
        # within them, for a crossing judged seconds later as for one now.
        self._covered: deque[list[float]] = deque(maxlen=256)
        self.lamp = LampReader(settings)
        self.history = PhaseHistory()
        self._controller_sent_at: float | None = None
        self._controller_phase: LampColour | None = None  # (its latest message's)

    def controller_fresh(self, t: float) -> bool:
        """A controller message sent within ``controller_ttl_s`` of ``t``, either side: one
        stamped well after the frame (a recording replayed on its own clock) is no more
        fresh for it than one well before."""
        sent = self._controller_sent_at
        return sent is not None and self._fresh(t, sent)

    def _fresh(self, t: float, sent: float) -> bool:
        return abs(t - sent) <= self._settings.controller_ttl_s

    def on_controller(self, message: SignalPhase, t: float | None = None) -> bool:
        """Take a controller message for this head, before the frame of time ``t`` if
        given; one older than the last is ignored, and one not fresh at ``t`` is refused
        (False): it would rewrite the history with what no longer holds, or does not yet."""
        if message.head != self.head:
            raise ValueError(f"message for head {message.head!r} given to head {self.head!r}")
        sent = message.sent_at.timestamp()
        if t is not None and not self._fresh(t, sent):
            return False
        if self._controller_sent_at is not None and sent < self._controller_sent_at:
            return True
        changed = message.changed_at.timestamp()
        last = self._controller_phase
        if (
            last is not None
            and self._controller_sent_at is not None
            and NEXT_PHASE.get(last) is not message.phase
            and changed > self._controller_sent_at
        ):
            # The phase last reported is known to have held only until the message that
            # reported it: what came between (a green whose messages were lost, before
            # this yellow, or before the next red) is not known. (Whatever the lamp read
            # once the controller went stale, nothing or the green itself, does not tell
            # when that phase ended.)
            self.history.record(
                LampColour.UNKNOWN, self._controller_sent_at, SignalSource.CONTROLLER
            )
        self._controller_sent_at = sent
        self._controller_phase = message.phase
        ttl = self._settings.controller_ttl_s
        if self._covered and sent - ttl <= self._covered[-1][1]:
            self._covered[-1][1] = sent + ttl
        else:
            self._covered.append([sent - ttl, sent + ttl])
        self.history.record(message.phase, changed, SignalSource.CONTROLLER)
        return True

    def on_lamp(self, t: float, strengths: LampStrengths) -> LampColour:
        """Feed one frame's lamp strengths; returns the phase in force at ``t``."""
        reading = self.lamp.update(t, strengths)
        if self.controller_fresh(t):
            return self.phase_at(t)
        began = reading.began_at
        if self._controller_sent_at is not None:  # (never after this frame)
            stale = self._controller_sent_at + self._settings.controller_ttl_s
            began = max(began, min(stale, t))
        if reading.colour is not LampColour.UNKNOWN:
            self.history.record(reading.colour, began, SignalSource.LAMP)
        elif self._controller_spoke_last():
            # A lamp that reads nothing (glare) does not carry on what the silent
            # controller last said: its next phase may have gone unheard.
            self.history.record(LampColour.UNKNOWN, began, SignalSource.LAMP)
        return self.phase_at(t)

    def _controller_spoke_last(self) -> bool:
        spans = self.history.spans
        return bool(spans) and spans[-1].source is SignalSource.CONTROLLER

    def _known(self, t: float) -> bool:
        return self._lamps or self._covered_at(t)

    def silent(self, t: float) -> bool:
        """A head only the controller reports, with no fresh message at ``t``."""
        return not self._known(t)

    def phase_at(self, t: float) -> LampColour:
        return self.history.phase_at(t) if self._known(t) else LampColour.UNKNOWN

    def red_began(self, t: float) -> float | None:
        return self.history.red_began(t) if self._known(t) else None

    def source_at(self, t: float) -> SignalSource | None:
        """Where the phase in force at ``t`` came from; None when it is not known. On a
        head with lamps, a phase the controller began that still stands after it went
        stale is the lamp's from then on: the lamp took over and read nothing else."""
        if not self._known(t):
            return None
        source = self.history.source_at(t)
        if source is SignalSource.CONTROLLER and self._lamps and not self._covered_at(t):
            return SignalSource.LAMP
        return source

    def _covered_at(self, t: float) -> bool:
        return any(a <= t <= b for a, b in reversed(self._covered))

    def told_until(self) -> float:
        """The sent time of the controller's latest message taken (-inf before any): what
        it reported for times up to then is as it knew them then."""
        sent = self._controller_sent_at
        return -float("inf") if sent is None else sent
