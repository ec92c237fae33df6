"""Biometric verification: face (dlib) and voice (speaker embeddings)."""
