"""Local development and the demo: DEBUG on unless the environment says otherwise."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DEBUG", default=True)

# The demo never runs collectstatic: whitenoise serves straight from the app folders.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True

# The portal's own 404 page rather than Django's technical one (it lists URL patterns).
MIDDLEWARE = [*MIDDLEWARE, "core.middleware.PortalNotFoundMiddleware"]  # noqa: F405
