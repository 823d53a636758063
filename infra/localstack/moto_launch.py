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

# The source of moto 5.2's FakeMultipart.complete, which _complete below re-implements.
_MOTO_COMPLETE_SHA256 = "a5cd01f2f2f28c9b2173f99751e579d94e23cb6646b609f036aa3564b286f961"

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

    # werkzeug answers every request with "Connection: close" (its run_wsgi: http.server cannot tell where a
    # request's body ends, so it would read the rest of one body as the next request line), and drains each
    # socket for 10 ms through a new selector after answering. Each request then costs moto a TCP accept, a new
    # thread (and its stack's page faults), a selector and a close, and the front a new connection: about a
    # quarter of moto's CPU for a small PutObject. Here the body is framed by its Content-Length (or by
    # werkzeug's own chunked decoder), whatever the application left unread is read to the frame's end, and the
    # connection then serves the client's next request on the same thread, as HTTP/1.1 intends. A request
    # whose body cannot be framed (no valid length) still closes its connection after the answer.
    from werkzeug.wsgi import LimitedStream as _LimitedStream

    class _NoDrainSelector:
        # werkzeug's drain after each answer, emptied: _run_wsgi reads exactly the rest of the body instead.
        def register(self, *a, **k):
            return None

        def select(self, timeout=None):
            return []

        def close(self):
            return None

    class _Selectors:
        EVENT_READ = 1
        DefaultSelector = _NoDrainSelector

    _serving.selectors = _Selectors
    _werkzeug_run_wsgi = _serving.WSGIRequestHandler.run_wsgi
    _send_header = _serving.WSGIRequestHandler.send_header

    def _run_wsgi(self):
        raw, self._framed = self.rfile, True
        if "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0:
                self._framed = False
            else:
                self.rfile = _LimitedStream(raw, length)  # what make_environ hands the app as wsgi.input
        self._answering = True
        try:
            _werkzeug_run_wsgi(self)
            if self._framed:
                body = self.environ["wsgi.input"]
                while body.read(1 << 16):
                    pass
        except Exception:
            self.close_connection = True
            raise
        finally:
            self.rfile, self._answering = raw, False
        if not self._framed:
            self.close_connection = True

    def _send_header_keep_alive(self, keyword, value):
        answering = getattr(self, "_answering", False) and self._framed
        if answering and keyword.lower() == "connection" and value.lower() == "close":
            return  # werkzeug's unconditional close (http.server's own errors still close)
        _send_header(self, keyword, value)

    # CompleteMultipartUpload of a 1 GiB object took moto 16 s, holding the interpreter lock for most of them, so
    # every other S3 and KMS request waited behind it (the export's documents among them): FakeMultipart.complete
    # grows one bytearray part by part and a second one for the full-object checksum, copies each to bytes, and
    # the new key's SpooledTemporaryFile takes that value into memory before rolling over to its file; most of
    # the time went to the kernel zeroing gigabytes of fresh pages. Here the parts are written to the new key's
    # file one by one, and the full-object checksum is taken part by part on the way (CRC32 and CRC64NVME both
    # run over pieces; other algorithms get moto's one value in memory). The result (value, ETag, checksum,
    # errors) is moto's; complete is replaced only when its source is the one this was written against (moto
    # 5.2), else moto's own runs.
    import base64 as _base64
    import binascii as _binascii
    import codecs as _codecs
    import hashlib as _hashlib
    import inspect as _inspect
    import tempfile as _tempfile
    from moto.core.compat import HAS_CRT as _HAS_CRT
    from moto.s3 import models as _s3m
    from moto.s3.utils import compute_checksum as _compute_checksum

    class _Joined:
        """A completed upload's value: a key buffer holding its parts, in order, which the new key takes over."""

        def __init__(self, buffer, size):
            self.buffer, self.size = buffer, size

        def __len__(self):
            return self.size

    def _running_checksum(algorithm):
        # compute_checksum's own choices: CRC64NVME without awscrt is its CRC32 fallback.
        if algorithm == "CRC64NVME" and _HAS_CRT:
            from awscrt import checksums

            return lambda crc, data: checksums.crc64nvme(data, crc), 8
        if algorithm in ("CRC32", "CRC64NVME"):
            return lambda crc, data: _binascii.crc32(data, crc), 4
        return None, 0

    _complete_source = _hashlib.sha256(_inspect.getsource(_s3m.FakeMultipart.complete).encode()).hexdigest()
    if _complete_source == _MOTO_COMPLETE_SHA256:

        def _complete(self, body):
            checksum_algo = self.metadata.get("x-amz-checksum-algorithm")
            checksum_type = self.metadata.get("x-amz-checksum-type")
            decode_hex = _codecs.getdecoder("hex_codec")
            parts, md5s = [], bytearray()
            checksum_builder = _s3m.MultipartChecksumBuilder(checksum_algo, checksum_type)
            full_object = checksum_builder.checksum_type != "COMPOSITE"
            last = None
            for pn, etag in body:
                part = self.parts.get(pn)
                part_etag = None
                if part is not None:
                    part_etag = part.etag.replace('"', "")
                    etag = etag.replace('"', "")
                if part is None or part_etag != etag:
                    raise _s3m.InvalidPart()
                if last is not None and last.contentsize < _s3m.S3_UPLOAD_PART_MIN_SIZE:
                    raise _s3m.EntityTooSmall()
                md5s.extend(decode_hex(part_etag)[0])
                parts.append(part)
                if not full_object:
                    checksum_builder.addPart(part.value)
                last = part
            if not parts:
                raise _s3m.MalformedXML
            # Read here: moto disposes of the parts (closes their buffers) before it stores the new key.
            size = sum(p.contentsize for p in parts)
            buffer_size = _s3m.get_s3_default_key_buffer_size()
            buffer = _tempfile.SpooledTemporaryFile(buffer_size)
            if size > buffer_size:
                buffer.rollover()
            algorithm = checksum_builder.checksum_algorithm
            step, width = _running_checksum(algorithm) if full_object else (None, 0)
            crc = 0
            for p in parts:
                value = p.value
                buffer.write(value)
                if step is not None:
                    crc = step(crc, value)
            if not full_object:
                checksum = checksum_builder.build()
            else:
                if step is None:
                    buffer.seek(0)
                    digest = _compute_checksum(buffer.read(), algorithm)
                else:
                    digest = _base64.b64encode(crc.to_bytes(width, "big"))
                checksum = (checksum_builder.checksum_type, digest.decode(), 1)
            full_etag = _s3m.md5_hash()
            full_etag.update(bytes(md5s))
            return _Joined(buffer, size), f"{full_etag.hexdigest()}-{len(parts)}", checksum

        _s3m.FakeMultipart.complete = _complete

        _set_value = _s3m.FakeKey.value.fset

        def _set_value_spooled(self, new_value):
            if isinstance(new_value, _Joined):
                self._value_buffer.close()
                self._value_buffer, self.contentsize = new_value.buffer, new_value.size
                return
            buf = self._value_buffer
            big = self._max_buffer_size and len(new_value) > self._max_buffer_size
            if big and isinstance(new_value, bytes) and not getattr(buf, "_rolled", True):
                buf.rollover()  # where SpooledTemporaryFile.write would end up, without the copy in memory first
            _set_value(self, new_value)

        _s3m.FakeKey.value = property(_s3m.FakeKey.value.fget, _set_value_spooled)
    else:
        print("moto_launch: FakeMultipart.complete is not moto 5.2's; running it unpatched", file=sys.stderr)

    _serving.WSGIRequestHandler.run_wsgi = _run_wsgi
    _serving.WSGIRequestHandler.send_header = _send_header_keep_alive
    # An idle kept connection holds a thread blocked in its read: the front drops its idle ones sooner (90 s).
    _serving.WSGIRequestHandler.timeout = 300
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
