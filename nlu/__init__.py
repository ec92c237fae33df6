"""billtalk nlu package."""
