"""Adapters: the database (ORM, repositories) behind the service layer."""
