"""billtalk bot package."""
