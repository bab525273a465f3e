"""Firebox's Python runtime client: speaks the Lambda Runtime API, runs one handler.

Standard library only, and Python 3.8 syntax: it runs inside the sandbox on whichever
Python 3 the function's runtime names. ``prepare()`` does the work that does not depend on
the function (imports), so a zygote can do it once before forking; ``main()`` then runs
the Init and Invoke phases for one function.
"""

import importlib
import json
import os
import socket
import sys
import time
import traceback

_API_PREFIX = "/2018-06-01/runtime"


class LambdaContext:
    """The context object handlers receive, with Lambda's attribute names."""

    def __init__(self, request_id, deadline_ms, invoked_arn, client_context, identity):
        self.aws_request_id = request_id
        self._deadline_ms = deadline_ms
        self.invoked_function_arn = invoked_arn
        self.client_context = client_context
        self.identity = identity
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")

    def get_remaining_time_in_millis(self):
        return max(int(self._deadline_ms - time.time() * 1000), 0)

    def __repr__(self):
        return "LambdaContext([aws_request_id=%s,function_name=%s,function_version=%s])" % (
            self.aws_request_id,
            self.function_name,
            self.function_version,
        )


class _Obj:
    def __init__(self, data):
        for k, v in (data or {}).items():
            setattr(self, k, v)


class _ClientContext:
    def __init__(self, data):
        self.client = _Obj(data.get("client")) if data.get("client") else None
        self.custom = data.get("custom")
        self.env = data.get("env")


class _CognitoIdentity:
    def __init__(self, data):
        self.cognito_identity_id = data.get("cognitoIdentityId")
        self.cognito_identity_pool_id = data.get("cognitoIdentityPoolId")


class _MarshalError(Exception):
    """The handler's result cannot be turned into JSON."""


def error_shape(exc, error_type=None, tb=None):
    """Lambda's {errorMessage, errorType, stackTrace} for an exception."""
    if tb is None:
        tb = exc.__traceback__
    frames = traceback.extract_tb(tb)
    stack = [
        '  File "%s", line %d, in %s\n    %s\n'
        % (f.filename, f.lineno, f.name, (f.line or "").strip())
        for f in frames
    ]
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "requestId": "",
        "stackTrace": stack,
    }


class _Response(object):
    __slots__ = ("status", "headers")

    def __init__(self, status, headers):
        self.status = status
        self.headers = headers

    def getheader(self, name, default=None):
        return self.headers.get(name.lower(), default)


class RuntimeAPI(object):
    """The Runtime API over one kept-alive HTTP/1.1 connection.

    Written by hand rather than with http.client: this is the per-invoke hot path, and
    http.client's header parsing (email.parser) costs several times the CPU of the
    exchange itself (0.24 ms against 0.05 ms per /next + /response on this machine).
    """

    def __init__(self, address):
        host, _, port = address.rpartition(":")
        self._addr = (host, int(port))
        self._host = address
        self._sock = None
        self._buf = bytearray()

    def _connect(self):
        sock = socket.create_connection(self._addr)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._buf = bytearray()

    def _close(self):
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = None

    def _recv(self):
        chunk = self._sock.recv(262144)
        if not chunk:
            raise ConnectionError("the Runtime API closed the connection")
        self._buf += chunk

    def _read_response(self):
        buf = self._buf
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            self._recv()
            buf = self._buf
        lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        del buf[: end + 4]
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = self._read_chunked()
        else:
            length = int(headers.get("content-length", "0"))
            while len(self._buf) < length:
                self._recv()
            body = bytes(self._buf[:length])
            del self._buf[:length]
        if headers.get("connection", "").lower() == "close":
            self._close()
        return _Response(status, headers), body

    def _read_chunked(self):
        parts = []
        while True:
            while b"\r\n" not in self._buf:
                self._recv()
            end = self._buf.find(b"\r\n")
            size = int(bytes(self._buf[:end]).split(b";")[0], 16)
            del self._buf[: end + 2]
            while len(self._buf) < size + 2:
                self._recv()
            parts.append(bytes(self._buf[:size]))
            del self._buf[: size + 2]
            if size == 0:
                return b"".join(parts)

    def _request(self, method, path, body=b"", headers=None):
        head = "%s %s%s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n" % (
            method,
            _API_PREFIX,
            path,
            self._host,
            len(body),
        )
        for key, value in (headers or {}).items():
            head += "%s: %s\r\n" % (key, value)
        data = (head + "\r\n").encode("latin-1") + body
        for attempt in (0, 1):
            if self._sock is None:
                self._connect()
            try:
                self._sock.sendall(data)
                return self._read_response()
            except (OSError, ValueError):
                # The server may have closed an idle kept-alive connection: reconnect once.
                self._close()
                if attempt:
                    raise

    def next(self):
        resp, body = self._request("GET", "/invocation/next")
        if resp.status != 200:
            raise RuntimeError("runtime API /next answered %d" % resp.status)
        return resp, body

    def respond(self, request_id, body):
        self._request("POST", "/invocation/%s/response" % request_id, body)

    def error(self, request_id, shape):
        self._request(
            "POST",
            "/invocation/%s/error" % request_id,
            json.dumps(shape).encode(),
            {
                "Lambda-Runtime-Function-Error-Type": shape["errorType"],
                "Content-Type": "application/json",
            },
        )

    def init_error(self, shape):
        self._request(
            "POST",
            "/init/error",
            json.dumps(shape).encode(),
            {
                "Lambda-Runtime-Function-Error-Type": shape["errorType"],
                "Content-Type": "application/json",
            },
        )


def load_handler(handler_name):
    """Import the handler's module; return (handler, None) or (None, error shape)."""
    module_name, _, func_name = handler_name.rpartition(".")
    if not module_name or not func_name:
        return None, {
            "errorMessage": "Bad handler '%s': not enough values to unpack "
            "(expected 2, got 1)" % handler_name,
            "errorType": "Runtime.MalformedHandlerName",
            "stackTrace": [],
        }
    module_name = module_name.replace("/", ".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return None, {
            "errorMessage": "Unable to import module '%s': %s" % (module_name, exc),
            "errorType": "Runtime.ImportModuleError",
            "stackTrace": [],
        }
    except SyntaxError as exc:
        return None, {
            "errorMessage": "Syntax error in module '%s': %s" % (module_name, exc),
            "errorType": "Runtime.UserCodeSyntaxError",
            "stackTrace": [
                '  File "%s" Line %s\n    %s\n'
                % (exc.filename, exc.lineno, (exc.text or "").strip())
            ],
        }
    except Exception as exc:
        shape = error_shape(exc)
        shape["errorMessage"] = str(exc)
        return None, shape
    handler = getattr(module, func_name, None)
    if handler is None:
        return None, {
            "errorMessage": "Handler '%s' missing on module '%s'" % (func_name, module_name),
            "errorType": "Runtime.HandlerNotFound",
            "stackTrace": [],
        }
    return handler, None


def prepare():
    """Imports that every function pays for otherwise (done once in a zygote)."""
    import decimal  # noqa: F401  (json of Decimal in user code is common)
    import email.parser  # noqa: F401  (http.client parses headers with it, lazily)
    import encodings.idna  # noqa: F401  (first getaddrinfo imports it)
    import logging  # noqa: F401
    import uuid  # noqa: F401


def _set_paths():
    task_root = os.environ.get("LAMBDA_TASK_ROOT", "/var/task")
    opt = os.environ.get("FIREBOX_OPT_DIR", "/opt")
    version = "python%d.%d" % sys.version_info[:2]
    extra = [
        task_root,
        os.path.join(opt, "python"),
        os.path.join(opt, "python", "lib", version, "site-packages"),
    ]
    sys.path[:0] = [p for p in extra if p not in sys.path]
    os.chdir(task_root)


class _RequestIdFilter(object):
    """Stamps log records with the current request id (held here, not in a global)."""

    def __init__(self):
        self.request_id = None

    def filter(self, record):
        record.aws_request_id = self.request_id
        return True


def _setup_logging():
    """Lambda's Python log format for the logging module, on the function's stdout."""
    import logging

    handler = logging.StreamHandler(sys.stdout)
    formatter = logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
        "%Y-%m-%dT%H:%M:%S",
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    ids = _RequestIdFilter()
    handler.addFilter(ids)
    root = logging.getLogger()
    root.addHandler(handler)
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL")
    if level:
        root.setLevel(level.upper())
    return ids


def main():
    _set_paths()
    api = RuntimeAPI(os.environ["AWS_LAMBDA_RUNTIME_API"])
    ids = _setup_logging()
    handler, init_error = load_handler(os.environ.get("_HANDLER", ""))
    if init_error is not None:
        sys.stdout.write("[ERROR] %s: %s\n" % (init_error["errorType"], init_error["errorMessage"]))
        sys.stdout.flush()
        api.init_error(init_error)
        sys.exit(1)
    while True:
        resp, body = api.next()
        request_id = resp.getheader("Lambda-Runtime-Aws-Request-Id")
        ids.request_id = request_id
        os.environ["_X_AMZN_TRACE_ID"] = resp.getheader("Lambda-Runtime-Trace-Id") or ""
        cc = resp.getheader("Lambda-Runtime-Client-Context")
        ci = resp.getheader("Lambda-Runtime-Cognito-Identity")
        context = LambdaContext(
            request_id,
            int(resp.getheader("Lambda-Runtime-Deadline-Ms") or 0),
            resp.getheader("Lambda-Runtime-Invoked-Function-Arn"),
            _ClientContext(json.loads(cc)) if cc else None,
            _CognitoIdentity(json.loads(ci)) if ci else None,
        )
        try:
            event = json.loads(body) if body else {}
            result = handler(event, context)
            try:
                out = json.dumps(result).encode()
            except (TypeError, ValueError) as exc:
                raise _MarshalError("Unable to marshal response: %s" % exc) from None
        except Exception as exc:
            shape = error_shape(
                exc, "Runtime.MarshalError" if isinstance(exc, _MarshalError) else None
            )
            shape["requestId"] = request_id
            # Lambda's Python runtime prints the error to the log as JSON-ish text.
            sys.stdout.write(
                "[ERROR] %s: %s\nTraceback (most recent call last):\n%s"
                % (shape["errorType"], shape["errorMessage"], "".join(shape["stackTrace"]))
            )
            sys.stdout.flush()
            sys.stderr.flush()
            api.error(request_id, shape)
            continue
        # Everything the handler printed must be in the pipe before the response is posted,
        # so the server can attribute it to this invocation.
        sys.stdout.flush()
        sys.stderr.flush()
        api.respond(request_id, out)


if __name__ == "__main__":
    prepare()
    main()
