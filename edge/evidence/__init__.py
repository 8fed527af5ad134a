"""Evidence for a violation: a ring buffer of recent frames per camera, and the package
built from it (overlaid full frames, crops, a short H.264 clip), hashed and signed."""
