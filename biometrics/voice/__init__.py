"""Voice verification with spoken challenge digits."""
