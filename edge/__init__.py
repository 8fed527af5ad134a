"""The edge node: sources, detector, tracker, rules, plates, evidence, outbox, publisher."""
