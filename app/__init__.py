"""The entry points: the ``billtalk`` command line, product start-up and the one web app.

This is the roof of the house: it composes every package (``app.cli`` mounts
their commands, ``app.web`` their web modules, ``app.bootstrap`` migrates their
tables) and nothing imports it. The ground floor every package stands on is
:mod:`billtalk` (settings, database helpers, logging).
"""
