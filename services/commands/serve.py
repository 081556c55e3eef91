"""`inkwalk serve [CONFIG]`: deploy the Serve apps and keep them up until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import time

from services.embedded_ray import add_verbose_flag


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve", help="run the ArtWalks and ConCLVD HTTP apps and the Studio (Ray Serve) until stopped",
        description="Deploys every app of a Serve config (default: the CPU config, loopback only) on the "
                    "cluster at RAY_ADDRESS or on a local Ray, prints their URLs and serves until Ctrl-C or "
                    "SIGTERM; then the apps are deleted (and a local Ray shut down).")
    p.add_argument("config", nargs="?", default=None, help="Serve config YAML (default: the packaged CPU config)")
    p.add_argument("--host", default=None, help="HTTP host (default: the config's, 127.0.0.1 for the CPU one)")
    p.add_argument("--port", type=int, default=None, help="HTTP port (default: the config's, 8000)")
    p.add_argument("--store", metavar="DIR|URI", default=None, help="results store of every app (default: the config's)")
    p.add_argument("--models", metavar="DIR", default=None, help="models folder of every app (else $INKWALK_MODELS)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    add_verbose_flag(p)
    p.add_argument("--insecure-no-token", action="store_true",
                   help="serve on a non-loopback host without an API token (anyone who can reach it can use it)")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from pathlib import Path

    import yaml
    from ray import serve

    from inkwalk.errors import InkwalkError
    from services.apps import apps_from_config
    from services.collection import DEFAULT_CONFIG, app_failure, ray_session

    config_path = Path(args.config or DEFAULT_CONFIG)
    try:
        config = yaml.safe_load(config_path.read_text())
        config["applications"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise InkwalkError(f"{config_path}: not a Serve config with applications ({exc})") from None
    http = dict(config.get("http_options") or {})
    http["host"] = args.host or http.get("host", "127.0.0.1")
    http["port"] = args.port or http.get("port", 8000)
    if not args.insecure_no_token:
        refuse_open_exposure(http["host"], config)
    overrides = app_overrides(config, args.store, args.models)
    pages = {app["name"] for app in config["applications"]
             if app.get("import_path", "").startswith("services.studio:")}

    def stop(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        with ray_session(args.address, args.num_cpus, args.verbose):
            serve.start(proxy_location=config.get("proxy_location", "HeadOnly"), http_options=http)
            built = apps_from_config(config_path, overrides)
            names = []
            try:
                for name, (app, prefix) in built.items():
                    try:
                        serve.run(app, name=name, route_prefix=prefix)
                    except Exception as exc:  # e.g. an app whose models are missing: serve the others
                        why = app_failure(name, exc)
                        serve.delete(name)
                        print(f"{name}: did not start: {why}", file=sys.stderr, flush=True)
                        continue
                    names.append(name)
                    page = "/" if name in pages else "/docs"
                    print(f"{name}: http://{http['host']}:{http['port']}{prefix}{page}", flush=True)
                if not names:
                    raise InkwalkError(f"no app of {config_path} started (see the lines above)")
                print("serving; Ctrl-C or SIGTERM stops and deletes the apps", flush=True)
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                print("stopping", flush=True)
            finally:
                for name in names:
                    serve.delete(name)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def app_overrides(config: dict, store: str | None, models: str | None) -> dict[str, dict]:
    """`--store` and `--models` as `apps_from_config` overrides: for the job apps only (the
    Studio serves its page's files and takes no args)."""
    patch = {k: v for k, v in (("store", store), ("models_dir", models)) if v}
    return {app["name"]: patch for app in config["applications"]
            if app.get("import_path", "").startswith("services.apps:")}


def refuse_open_exposure(host: str, config: dict) -> None:
    """InkwalkError if a job app would answer anyone: a non-loopback bind and an app without a token."""
    import ipaddress
    import os

    from inkwalk.errors import InkwalkError
    from services.apps import TOKEN_ENV

    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        loopback = False
    open_apps = [app["name"] for app in config["applications"]
                 if app.get("import_path", "").startswith("services.apps:")
                 and not (app.get("args") or {}).get("api_token") and not os.environ.get(TOKEN_ENV)]
    if not loopback and open_apps:
        raise InkwalkError(f"--host {host} serves other machines but {', '.join(open_apps)} has no API token: set "
                           f"{TOKEN_ENV} (or api_token in the config), or pass --insecure-no-token")
