"""The Telegram channel (python-telegram-bot 22).

* :mod:`~bot.channels.telegram.settings`: ``BILLTALK_TELEGRAM_*`` settings;
* :mod:`~bot.channels.telegram.masking`: the token never reaches a log line;
* :mod:`~bot.channels.telegram.channel`: :class:`TelegramChannel`, the sending side
  (``Channel.send``: text split at 4,096, inline keyboards, PDFs, PNG charts);
* :mod:`~bot.channels.telegram.adapter`: the PTB handlers onto ``DialogueEngine.handle``;
* :mod:`~bot.channels.telegram.ledger`: each update claimed once; chat order across workers;
* :mod:`~bot.channels.telegram.app`: the PTB ``Application`` and the running bot;
* :mod:`~bot.channels.telegram.webhook`: ``POST /telegram/webhook`` (``mount(app)``);
* :mod:`~bot.channels.telegram.cli`: ``billtalk telegram run / set-webhook``.

See ``docs/telegram.md``. Importing this package does not import PTB.
"""
