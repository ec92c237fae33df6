from billtalk.db import run_env
from biometrics.store import Base

run_env(Base.metadata)
