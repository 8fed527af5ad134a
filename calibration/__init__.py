"""Camera calibration: road-plane homography, lens distortion, checks and pictures."""
