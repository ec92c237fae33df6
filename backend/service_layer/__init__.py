"""The service layer: plain functions that run one use case in one unit of work."""
