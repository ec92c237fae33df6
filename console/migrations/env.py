from billtalk.db import run_env
from console.models import Base

run_env(Base.metadata)
