from billtalk.db import run_env
from bot.channels.speaker.devices import Base

run_env(Base.metadata)
