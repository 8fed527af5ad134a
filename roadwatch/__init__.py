"""Roadwatch: traffic-camera violation analytics for edge boxes and a central review service."""

__version__ = "0.1.0"
