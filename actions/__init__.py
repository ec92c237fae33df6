"""billtalk actions package."""
