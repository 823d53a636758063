# Starts moto_server with fixes for its cost per request, nothing else changed (arguments as moto_server's).
#
# moto's request router (moto_server/werkzeug_app.py, DomainDispatcherApplication.get_backend_for_host) lists
# moto's package directory, one stat per service, twice for every request, and matches the Host against every
# service's URL patterns: about a third of moto's CPU for a small PutObject. The list and the Host's service do
# not change while the server runs, so both are computed once. Every request is also logged by werkzeug; the
# stack's log keeps moto's warnings and errors only. If a moto release renames what is patched here, the server
# starts unpatched.
import logging
import os
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

    # Every account lookup (s3_backends[account], about 14 per S3 request) lists the dict's keys under a lock to
    # see whether the account is new: about 5 % of moto's CPU for a small PutObject. A known account needs
    # neither; a new one still goes through moto's own code.
    from moto.core.base_backend import BackendDict as _BackendDict

    _create_backend = _BackendDict._create_account_specific_backend

    def _known_or_create(self, account_id):
        if not dict.__contains__(self, account_id):
            _create_backend(self, account_id)

    _BackendDict._create_account_specific_backend = _known_or_create

    # S3Response.subdomain_based_buckets (virtual-hosted or path-style bucket names) runs five times per S3
    # request, each a handful of regular expressions over the Host; its answer depends on the Host and on
    # settings read from the environment, neither of which changes while the server runs.
    from urllib.parse import urlparse as _urlparse
    from moto.s3.responses import S3Response as _S3Response

    _subdomain = _S3Response.subdomain_based_buckets
    _subdomains = {}

    def _cached_subdomain(self, request):
        host = request.headers.get("host", request.headers.get("Host")) or _urlparse(request.url).netloc
        if host not in _subdomains:
            _subdomains[host] = _subdomain(self, request)
        return _subdomains[host]

    _S3Response.subdomain_based_buckets = _cached_subdomain

    # http.server parses every request's header block with the email package's feed parser, about 7 % of moto's
    # CPU for a small PutObject. A block of plain "Name: value" lines (what Go's front and the SDKs send) becomes
    # the same HTTPMessage here; anything else (folded lines, odd names, stray CRs) goes to the email parser.
    # MOTO_LAUNCH_SELFTEST checks the two against each other.
    import email.parser as _email_parser
    import http.client as _http_client
    import re as _re

    _read_headers = _http_client._read_headers
    _header_name = _re.compile(r"[\x21-\x39\x3b-\x7e]+\Z")  # feedparser's headerRE, less "From " and folding

    def _parse_headers(fp, _class=_http_client.HTTPMessage):
        lines = _read_headers(fp)
        msg = _class()
        for raw in lines:
            if raw in (b"\r\n", b"\n", b""):
                break
            line = raw.decode("iso-8859-1")
            line = line[:-2] if line.endswith("\r\n") else line[:-1] if line.endswith("\n") else line
            name, sep, value = line.partition(":")
            if not sep or "\r" in line or not _header_name.match(name):
                return _email_parser.Parser(_class=_class).parsestr(b"".join(lines).decode("iso-8859-1"))
            msg.set_raw(name, value.lstrip(" \t"))
        msg.set_payload("")
        return msg

    _email_parse_headers = _http_client.parse_headers
    _http_client.parse_headers = _parse_headers

    # werkzeug formats a log line for every request (decoding its path) before the logger drops it below.
    from werkzeug import serving as _serving

    _log_request = _serving.WSGIRequestHandler.log_request

    def _log_request_if_enabled(self, code="-", size="-"):
        if logging.getLogger("werkzeug").isEnabledFor(logging.INFO):
            _log_request(self, code, size)

    _serving.WSGIRequestHandler.log_request = _log_request_if_enabled
except (ImportError, AttributeError) as e:
    print(f"moto_launch: running moto unpatched ({e})", file=sys.stderr)

logging.getLogger("werkzeug").setLevel(logging.WARNING)

if os.environ.get("MOTO_LAUNCH_SELFTEST"):
    # The fast header parser against the email parser it replaces, on plain blocks and on every kind it hands back.
    import io

    blocks = [
        b"Host: a\r\nContent-Length: 5\r\n\r\nbody",
        b"Host:a\r\nX-Amz-Meta-K: \t v \r\nA: 1\r\nA: 2\r\nEmpty:\r\n\r\n",
        b"A: caf\xe9\r\n\r\n",
        b"A: b\n\n",
        b"A: b\r\n",
        b"",
        b"\r\n",
        b"Host: a\r\n folded\r\n\r\n",
        b"Bad Header: x\r\n\r\n",
        b"NoColon\r\n\r\n",
        b"A: b\rc\r\n\r\n",
        b"From x\r\nA: b\r\n\r\n",
    ]
    failed = 0
    for block in blocks:
        want, got = _email_parse_headers(io.BytesIO(block)), _parse_headers(io.BytesIO(block))
        if (
            want.items() != got.items()
            or want.get_payload() != got.get_payload()
            or [type(d) for d in want.defects] != [type(d) for d in got.defects]
            or want.get_unixfrom() != got.get_unixfrom()
        ):
            failed += 1
            print(f"moto_launch selftest: {block!r}: got {got.items()!r}, want {want.items()!r}", file=sys.stderr)
    sys.exit(1 if failed else 0)

try:
    # Named as the moto_server script would be, for ps, top and the benchmark's CPU by process.
    with open("/proc/self/comm", "w") as _comm:
        _comm.write("moto_server")
except OSError:
    pass

from moto.server import main  # noqa: E402

main(sys.argv[1:])
