# Starts moto_server with fixes for its cost per request, nothing else changed (arguments as moto_server's).
#
# moto's request router (moto_server/werkzeug_app.py, DomainDispatcherApplication.get_backend_for_host) lists
# moto's package directory, one stat per service, twice for every request, and matches the Host against every
# service's URL patterns: about a third of moto's CPU for a small PutObject. The list and the Host's service do
# not change while the server runs, so both are computed once. Every request is also logged by werkzeug; the
# stack's log keeps moto's warnings and errors only. If a moto release renames what is patched here, the server
# starts unpatched.
import logging
import sys

try:
    import moto.backends as _backends
    from moto.moto_server import werkzeug_app as _app

    _modules = tuple(_backends.list_of_moto_modules())
    _backends.list_of_moto_modules = lambda: iter(_modules)

    _route = _app.DomainDispatcherApplication.get_backend_for_host
    _routes = {}

    def _cached_route(self, host):
        if host not in _routes:
            _routes[host] = _route(self, host)
        return _routes[host]

    _app.DomainDispatcherApplication.get_backend_for_host = _cached_route

    # Every answer carries a request id of 52 random characters, drawn with one random.choice call each: about 3 %
    # of moto's CPU for a small PutObject. random.choices draws them in one call, from the same (seedable)
    # generator and with the same uniform distribution.
    import string as _string
    from moto.moto_api._internal.moto_random import MotoRandom as _MotoRandom

    _MotoRandom.get_random_string  # noqa: B018 (an AttributeError when moto renames it)

    def _random_string(self, length=20, include_digits=True, lower_case=False):
        pool = _string.ascii_letters + (_string.digits if include_digits else "")
        s = "".join(self.choices(pool, k=length))
        return s.lower() if lower_case else s

    _MotoRandom.get_random_string = _random_string
except (ImportError, AttributeError) as e:
    print(f"moto_launch: running moto unpatched ({e})", file=sys.stderr)

logging.getLogger("werkzeug").setLevel(logging.WARNING)

try:
    # Named as the moto_server script would be, for ps, top and the benchmark's CPU by process.
    with open("/proc/self/comm", "w") as _comm:
        _comm.write("moto_server")
except OSError:
    pass

from moto.server import main  # noqa: E402

main(sys.argv[1:])
