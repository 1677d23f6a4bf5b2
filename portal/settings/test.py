"""The test suite: PostgreSQL and Redis come from the environment that bin/with-services sets."""

import os

# The suite creates and flushes its database and hands it to worker and server processes:
# no connection pool here (production and the benchmarks use one, see base.database_from_env).
os.environ.setdefault("DATABASE_POOL", "0")

from .base import *  # noqa: F403
from .base import INSTALLED_APPS, REST_FRAMEWORK, STATIC_ROOT, VAR_DIR, static_files

DEBUG = False
SECRET_KEY = "test-insecure-key-only-for-the-test-suite-0123456789abcdefghijklmnop"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# The suite serves static files from their source folders (no collectstatic before each run);
# tests/portal/test_static_files.py runs a server with STATIC_FILES=hashed, as production.
STORAGES, WHITENOISE_USE_FINDERS, WHITENOISE_AUTOREFRESH = static_files("source")
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]}
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
ATTACHMENTS_ROOT = VAR_DIR / "test-attachments"
# The suite's own processes forget cached content types after its flushes (tests/apps.py).
INSTALLED_APPS = [*INSTALLED_APPS, "tests.apps.SuiteConfig"]
