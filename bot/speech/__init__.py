"""Offline speech recognition and synthesis."""
