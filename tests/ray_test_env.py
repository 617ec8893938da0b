"""The Ray tests' environment (tests/test_ray_backend.py), set by tests/conftest.py before
anything imports Ray, which reads the auth mode and token once, at import: loopback only (Ray
otherwise advertises the machine's outward address) and token authentication on."""

import os
import secrets

RAY_TOKEN = secrets.token_hex(16)
RAY_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_AUTH_MODE": "token",
    "RAY_AUTH_TOKEN": RAY_TOKEN,
    "RAY_USAGE_STATS_ENABLED": "0",
}
os.environ.update(RAY_ENV)
