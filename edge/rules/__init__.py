"""Violation rules: scene configuration, signal state and the pure rules.

The rules are pure functions of (scene, world tracks, signal state, clock): they take
typed values and return typed values, with no I/O.
"""
