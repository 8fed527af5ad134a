"""Calibration errors: each one is a single line a person can act on."""

from __future__ import annotations

from roadwatch.errors import UserError


class CalibrationError(UserError):
    """A point set, matrix, lens or calibration file that cannot be used."""


class CalibrationExpiredError(CalibrationError):
    """The calibration is outside its validity dates."""


class CalibrationRequiredError(CalibrationError):
    """A measurement that needs a calibrated camera was asked of an uncalibrated one."""
