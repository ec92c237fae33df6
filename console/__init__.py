"""billtalk console package."""
