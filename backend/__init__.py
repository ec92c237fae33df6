"""billtalk backend package."""
