"""`make run`: a laptop or a demo box. Debug on unless DEBUG=0; a throwaway key unless set."""

from .base import *  # noqa: F403
from .base import SECRET_KEY, STATIC_ROOT, VAR_DIR, env_bool, static_files

DEBUG = env_bool("DEBUG", default=True)
SECRET_KEY = SECRET_KEY or "dev-insecure-key-for-make-run-only-never-in-production-0123456789"
# Static files as production serves them (hashed, compressed, cached for good; bin/run runs
# collectstatic first), also with DEBUG on. STATIC_FILES=source for front-end work: edits to
# static/ show on reload, no collectstatic needed (docs/deploy.md, "Static files").
STORAGES, WHITENOISE_USE_FINDERS, WHITENOISE_AUTOREFRESH = static_files("hashed")

# The PostgreSQL data, the beat schedule and mail for `make run` live in var/.
VAR_DIR.mkdir(parents=True, exist_ok=True)
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
