"""What the worker processes of both services share."""

from __future__ import annotations

import signal


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> None:
    """Ask the kernel to send ``sig`` when the parent ends (Linux prctl; else nothing), so
    that no worker runs on alone after its parent was killed."""
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(sig))
    except (OSError, AttributeError):
        pass
