"""Vietnamese plate reading: grammar, plate colour, OCR and the per-track vote."""
