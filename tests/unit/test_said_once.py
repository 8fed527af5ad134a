from __future__ import annotations

from roadwatch.said_once import SaidOnce


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_warning_is_said_once_per_subject_and_again_after_a_while() -> None:
    clock = Clock()
    said = SaidOnce(again_after_s=600.0, max_subjects=2, clock=clock)
    assert said.due("a") and not said.due("a")
    assert said.due("b") and not said.due("b")
    clock.now = 599.0
    assert not said.due("a")
    clock.now = 600.0
    assert said.due("a") and not said.due("a")  # (an hour on, the fault still holds)
    assert said.due("c")  # (a third subject: the one said longest ago, b, is let go)
    assert not said.due("a") and not said.due("c") and said.due("b")
