"""Settings for the deploy scripts, from defaults and the environment."""

import os

DEFAULTS = {"region": "eu-west-1", "replicas": 2, "debug": False}


def parse_bool(value):
    """True for "1", "true", "yes" and "on", False for "0", "false", "no", "off"
    and the empty string (any case, surrounding spaces ignored); ValueError for
    anything else."""
    pass


def from_env(environ=os.environ):
    """DEFAULTS, overridden by DEPLOY_REGION, DEPLOY_REPLICAS and DEPLOY_DEBUG."""
    config = dict(DEFAULTS)
    if "DEPLOY_REGION" in environ:
        config["region"] = environ["DEPLOY_REGION"]
    if "DEPLOY_REPLICAS" in environ:
        config["replicas"] = int(environ["DEPLOY_REPLICAS"])
    if "DEPLOY_DEBUG" in environ:
        config["debug"] = parse_bool(environ["DEPLOY_DEBUG"])
    return config
