from billtalk.db import run_env
from bot.store import Base

run_env(Base.metadata)
