"""Per-rule precision and recall of the whole edge pipeline on scripted, generated scenes."""
