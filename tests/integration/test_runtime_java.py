"""The Java runtimes end to end through boto3, with handlers compiled here by the host's
javac against the AWS interface classes (aws-lambda-java-core's names): every handler style
AWS documents, JSON mapping of POJOs, maps and scalars, AWS's event classes from a lib/ jar,
errors in AWS's shape, Init errors, logs, layers and JAVA_TOOL_OPTIONS."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from conftest import ROLE, default_sandbox, invoke_json, make_zip, unique
from firebox.runtime.runtimes import available_runtimes
from javatools import compile_java, jar_of, javac

pytestmark = pytest.mark.skipif(
    "java17" not in available_runtimes() or javac() is None,
    reason="needs a JDK 17 with javac on the host",
)

# --- the function's own classes ----------------------------------------------------------

ORDER = """
package example;
import java.util.*;
public class Order {
    public enum Status { NEW, PAID }
    private String id;
    private int quantity;
    private double price;
    private boolean gift;
    private List<Item> items;
    private Map<String, Integer> counts;
    private Status status;
    private Set<String> tags;
    public String note;
    public String getId() { return id; }
    public void setId(String id) { this.id = id; }
    public int getQuantity() { return quantity; }
    public void setQuantity(int quantity) { this.quantity = quantity; }
    public double getPrice() { return price; }
    public void setPrice(double price) { this.price = price; }
    public boolean isGift() { return gift; }
    public void setGift(boolean gift) { this.gift = gift; }
    public List<Item> getItems() { return items; }
    public void setItems(List<Item> items) { this.items = items; }
    public Map<String, Integer> getCounts() { return counts; }
    public void setCounts(Map<String, Integer> counts) { this.counts = counts; }
    public Status getStatus() { return status; }
    public void setStatus(Status status) { this.status = status; }
    public Set<String> getTags() { return tags; }
    public void setTags(Set<String> tags) { this.tags = tags; }
    public static class Item {
        private String sku;
        private long qty;
        public String getSku() { return sku; }
        public void setSku(String sku) { this.sku = sku; }
        public long getQty() { return qty; }
        public void setQty(long qty) { this.qty = qty; }
    }
}
"""

RECEIPT = """
package example;
import java.util.*;
public class Receipt {
    private String orderId;
    private double total;
    private List<String> skus = new ArrayList<>();
    private boolean gift;
    private Order.Status status;
    private String nothing;
    private Map<String, Object> extra = new LinkedHashMap<>();
    public int publicField = 7;
    public String getOrderId() { return orderId; }
    public void setOrderId(String v) { orderId = v; }
    public double getTotal() { return total; }
    public void setTotal(double v) { total = v; }
    public List<String> getSkus() { return skus; }
    public boolean isGift() { return gift; }
    public void setGift(boolean v) { gift = v; }
    public Order.Status getStatus() { return status; }
    public void setStatus(Order.Status v) { status = v; }
    public String getNothing() { return nothing; }
    public Map<String, Object> getExtra() { return extra; }
    public String getURL() { return "https://example.com/" + orderId; }
}
"""

POJO = """
package example;
import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
public class Pojo implements RequestHandler<Order, Receipt> {
    public Receipt handleRequest(Order order, Context context) {
        Receipt r = new Receipt();
        r.setOrderId(order.getId());
        r.setTotal(order.getQuantity() * order.getPrice());
        for (Order.Item item : order.getItems()) {
            r.getSkus().add(item.getSku() + "x" + item.getQty());
        }
        r.setGift(order.isGift());
        r.setStatus(order.getStatus());
        r.getExtra().put("counts", order.getCounts());
        r.getExtra().put("note", order.note);
        java.util.Set<String> tags = order.getTags();
        r.getExtra().put("tags", tags == null ? null : new java.util.TreeSet<>(tags));
        return r;
    }
}
"""

MAPS = """
package example;
import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import java.util.*;
public class Maps implements RequestHandler<Map<String, Object>, Map<String, Object>> {
    public Map<String, Object> handleRequest(Map<String, Object> input, Context context) {
        Map<String, Object> types = new LinkedHashMap<>();
        for (Map.Entry<String, Object> e : input.entrySet()) {
            types.put(e.getKey(), e.getValue() == null ? null : e.getValue().getClass().getName());
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("types", types);
        out.put("echo", input);
        out.put("nullValue", null);
        return out;
    }
}
"""

SCALARS = """
package example;
import com.amazonaws.services.lambda.runtime.Context;
import java.io.*;
import java.util.*;
public class Scalars {
    public String upper(String s) { return s.toUpperCase(); }
    public int twice(Integer n) { return n * 2; }
    public Integer sum(List<Integer> xs, Context context) {
        int total = 0;
        for (Integer x : xs) total += x;
        return total + (context.getAwsRequestId().isEmpty() ? 1000 : 0);
    }
    public static String noArgs() { return "static, no arguments"; }
    public void ctxOnly(Context context) {
        System.out.println("ctxOnly " + context.getFunctionName());
    }
    public void streams(InputStream in, OutputStream out) throws IOException {
        byte[] data = in.readAllBytes();
        for (int i = data.length - 1; i >= 0; i--) out.write(data[i]);
    }
    // Overloads: AWS's ranking picks the (Map, Context) one.
    public String pick(Map<String, Object> m) { return "one argument"; }
    public String pick(Map<String, Object> m, Context c) { return "with context " + m.get("k"); }
}
"""

STREAMS = """
package example;
import com.amazonaws.services.lambda.runtime.*;
import java.io.*;
import java.nio.charset.StandardCharsets;
public class Streams implements RequestStreamHandler {
    public void handleRequest(InputStream in, OutputStream out, Context context)
            throws IOException {
        String body = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        String text = "raw:" + body + ":" + context.getFunctionName();
        out.write(text.getBytes(StandardCharsets.UTF_8));
    }
}
"""

CTX = """
package example;
import com.amazonaws.services.lambda.runtime.*;
import com.amazonaws.services.lambda.runtime.logging.LogLevel;
import java.util.*;
public class Ctx implements RequestHandler<Object, Map<String, Object>> {
    private static final String STARTED = System.getenv("AWS_LAMBDA_FUNCTION_NAME");
    public Map<String, Object> handleRequest(Object input, Context context) {
        System.out.println("to stdout " + input);
        System.err.println("to stderr");
        context.getLogger().log("logger line one\\nline two");
        context.getLogger().log("at warn", LogLevel.WARN);
        context.getLogger().log("at debug", LogLevel.DEBUG);
        LambdaRuntime.getLogger().log("static logger".getBytes());
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("requestId", context.getAwsRequestId());
        out.put("functionName", context.getFunctionName());
        out.put("functionVersion", context.getFunctionVersion());
        out.put("arn", context.getInvokedFunctionArn());
        out.put("memory", context.getMemoryLimitInMB());
        out.put("remaining", context.getRemainingTimeInMillis());
        out.put("logGroup", context.getLogGroupName());
        out.put("logStream", context.getLogStreamName());
        ClientContext cc = context.getClientContext();
        out.put("custom", cc == null ? null : cc.getCustom());
        out.put("clientEnv", cc == null ? null : cc.getEnvironment());
        Client client = cc == null ? null : cc.getClient();
        out.put("installationId", client == null ? null : client.getInstallationId());
        CognitoIdentity id = context.getIdentity();
        out.put("identity", id == null ? "none" : id.getIdentityId());
        out.put("staticInitSawEnv", STARTED);
        out.put("myVar", System.getenv("MY_VAR"));
        out.put("handlerEnv", System.getenv("_HANDLER"));
        out.put("javaVersion", System.getProperty("java.version"));
        out.put("timeZone", java.util.TimeZone.getDefault().getID());
        out.put("javaHome", System.getProperty("java.home"));
        out.put("userDir", System.getProperty("user.dir"));
        out.put("maxHeapMb", Runtime.getRuntime().maxMemory() / (1024 * 1024));
        out.put("relativeRead", new java.io.File("example/Ctx.class").isFile());
        out.put("loader", Ctx.class.getClassLoader() == ClassLoader.getSystemClassLoader());
        try {
            String maps = new String(java.nio.file.Files.readAllBytes(
                java.nio.file.Paths.get("/proc/self/maps")));
            out.put("classDataSharing", maps.contains("/var/runtime/firebox.jsa"));
        } catch (java.io.IOException e) {
            out.put("classDataSharing", e.toString());
        }
        try {
            Process p = new ProcessBuilder("/bin/sh", "-c", "echo $MY_VAR").start();
            out.put("childSees", new String(p.getInputStream().readAllBytes()).trim());
        } catch (java.io.IOException e) {
            out.put("childSees", e.toString());
        }
        return out;
    }
}
"""

FAILS = """
package example;
import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import java.util.Map;
public class Fails implements RequestHandler<Map<String, Object>, String> {
    static int calls = 0;
    public String handleRequest(Map<String, Object> input, Context context) {
        calls++;
        if (input.containsKey("ok")) return "ok after " + calls;
        throw new IllegalArgumentException(
            "bad input " + input.get("x"), new java.io.IOException("root cause"));
    }
}
"""

BAD_INIT = """
package example;
import com.amazonaws.services.lambda.runtime.*;
public class BadInit implements RequestHandler<Object, String> {
    static { if (true) throw new IllegalStateException("static initializer failed"); }
    public String handleRequest(Object o, Context c) { return "never"; }
}
"""

BAD_CTOR = """
package example;
import com.amazonaws.services.lambda.runtime.*;
public class BadCtor implements RequestHandler<Object, String> {
    public BadCtor() { throw new UnsupportedOperationException("constructor failed"); }
    public String handleRequest(Object o, Context c) { return "never"; }
}
"""

NOT_A_HANDLER = """
package example;
public class NotAHandler { public String run() { return "x"; } }
"""

EVENTS_USER = """
package example;
import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.events.*;
import java.util.*;
public class Events {
    public String scheduled(ScheduledEvent e) {
        return e.getDetailType() + "|" + e.getTime() + "|" + e.getTime().getYear() + "|"
            + e.getDetail().get("k") + "|" + e.getResources() + "|" + e.getAccount();
    }
    public String sqs(SQSEvent e, Context c) {
        SQSEvent.SQSMessage m = e.getRecords().get(0);
        return e.getRecords().size() + "|" + m.getMessageId() + "|" + m.getBody() + "|"
            + m.getEventSourceArn();
    }
    public APIGatewayV2HTTPResponse http(APIGatewayV2HTTPEvent e, Context c) {
        APIGatewayV2HTTPResponse r = new APIGatewayV2HTTPResponse();
        r.setStatusCode(201);
        Map<String, String> h = new LinkedHashMap<>();
        h.put("x-method", e.getRequestContext().getHttp().getMethod());
        r.setHeaders(h);
        r.setBody(e.getRawPath() + "?" + e.getRawQueryString() + " " + e.getHeaders().get("host"));
        return r;
    }
    public ScheduledEvent echo(ScheduledEvent e) { return e; }
}
"""

# Stand-ins for classes a real function brings in its lib/ jars (aws-lambda-java-events and
# Joda-Time), with their names and property shapes.
EVENTS_LIB = {
    "org/joda/time/DateTime.java": """
package org.joda.time;
public final class DateTime {
    private final String iso;
    private DateTime(String iso) { this.iso = iso; }
    public static DateTime parse(String s) { return new DateTime(s); }
    public int getYear() { return Integer.parseInt(iso.substring(0, 4)); }
    public String toString() { return iso; }
}
""",
    "com/amazonaws/services/lambda/runtime/events/ScheduledEvent.java": """
package com.amazonaws.services.lambda.runtime.events;
import java.util.*;
import org.joda.time.DateTime;
public class ScheduledEvent {
    private String account, region, source, id, detailType;
    private Map<String, Object> detail;
    private List<String> resources;
    private DateTime time;
    public String getAccount() { return account; }
    public void setAccount(String v) { account = v; }
    public ScheduledEvent withAccount(String v) { account = v; return this; }
    public String getRegion() { return region; }
    public void setRegion(String v) { region = v; }
    public String getSource() { return source; }
    public void setSource(String v) { source = v; }
    public String getId() { return id; }
    public void setId(String v) { id = v; }
    public String getDetailType() { return detailType; }
    public void setDetailType(String v) { detailType = v; }
    public Map<String, Object> getDetail() { return detail; }
    public void setDetail(Map<String, Object> v) { detail = v; }
    public List<String> getResources() { return resources; }
    public void setResources(List<String> v) { resources = v; }
    public DateTime getTime() { return time; }
    public void setTime(DateTime v) { time = v; }
}
""",
    "com/amazonaws/services/lambda/runtime/events/SQSEvent.java": """
package com.amazonaws.services.lambda.runtime.events;
import java.util.*;
public class SQSEvent {
    private List<SQSMessage> records;
    public List<SQSMessage> getRecords() { return records; }
    public void setRecords(List<SQSMessage> r) { records = r; }
    public static class SQSMessage {
        private String messageId, body, eventSourceArn;
        private Map<String, String> attributes;
        public String getMessageId() { return messageId; }
        public void setMessageId(String v) { messageId = v; }
        public String getBody() { return body; }
        public void setBody(String v) { body = v; }
        public String getEventSourceArn() { return eventSourceArn; }
        public void setEventSourceArn(String v) { eventSourceArn = v; }
        public Map<String, String> getAttributes() { return attributes; }
        public void setAttributes(Map<String, String> v) { attributes = v; }
    }
}
""",
    "com/amazonaws/services/lambda/runtime/events/APIGatewayV2HTTPEvent.java": """
package com.amazonaws.services.lambda.runtime.events;
import java.util.*;
public class APIGatewayV2HTTPEvent {
    private String version, routeKey, rawPath, rawQueryString, body;
    private Map<String, String> headers;
    private RequestContext requestContext;
    public String getVersion() { return version; }
    public void setVersion(String v) { version = v; }
    public String getRouteKey() { return routeKey; }
    public void setRouteKey(String v) { routeKey = v; }
    public String getRawPath() { return rawPath; }
    public void setRawPath(String v) { rawPath = v; }
    public String getRawQueryString() { return rawQueryString; }
    public void setRawQueryString(String v) { rawQueryString = v; }
    public String getBody() { return body; }
    public void setBody(String v) { body = v; }
    public Map<String, String> getHeaders() { return headers; }
    public void setHeaders(Map<String, String> v) { headers = v; }
    public RequestContext getRequestContext() { return requestContext; }
    public void setRequestContext(RequestContext v) { requestContext = v; }
    public static class RequestContext {
        private String requestId;
        private long timeEpoch;
        private Http http;
        public String getRequestId() { return requestId; }
        public void setRequestId(String v) { requestId = v; }
        public long getTimeEpoch() { return timeEpoch; }
        public void setTimeEpoch(long v) { timeEpoch = v; }
        public Http getHttp() { return http; }
        public void setHttp(Http v) { http = v; }
        public static class Http {
            private String method, path, sourceIp;
            public String getMethod() { return method; }
            public void setMethod(String v) { method = v; }
            public String getPath() { return path; }
            public void setPath(String v) { path = v; }
            public String getSourceIp() { return sourceIp; }
            public void setSourceIp(String v) { sourceIp = v; }
        }
    }
}
""",
    "com/amazonaws/services/lambda/runtime/events/APIGatewayV2HTTPResponse.java": """
package com.amazonaws.services.lambda.runtime.events;
import java.util.*;
public class APIGatewayV2HTTPResponse {
    private int statusCode;
    private Map<String, String> headers;
    private List<String> cookies;
    private String body;
    public int getStatusCode() { return statusCode; }
    public void setStatusCode(int v) { statusCode = v; }
    public Map<String, String> getHeaders() { return headers; }
    public void setHeaders(Map<String, String> v) { headers = v; }
    public List<String> getCookies() { return cookies; }
    public void setCookies(List<String> v) { cookies = v; }
    public String getBody() { return body; }
    public void setBody(String v) { body = v; }
}
""",
}


@pytest.fixture(scope="module")
def events_jar() -> bytes:
    return jar_of(compile_java(EVENTS_LIB))


@pytest.fixture(scope="module")
def package(events_jar: bytes) -> bytes:
    """The function's zip: its classes at the root, its dependencies in lib/."""
    sources = {
        "example/Order.java": ORDER,
        "example/Receipt.java": RECEIPT,
        "example/Pojo.java": POJO,
        "example/Maps.java": MAPS,
        "example/Scalars.java": SCALARS,
        "example/Streams.java": STREAMS,
        "example/Ctx.java": CTX,
        "example/Fails.java": FAILS,
        "example/BadInit.java": BAD_INIT,
        "example/BadCtor.java": BAD_CTOR,
        "example/NotAHandler.java": NOT_A_HANDLER,
        "example/Events.java": EVENTS_USER,
    }
    files: dict[str, str | bytes] = dict(compile_java(sources, [events_jar]))
    files["lib/aws-lambda-java-events-standin.jar"] = events_jar
    return make_zip(files)


def java_function(lam: Any, package: bytes, handler: str, **kwargs: Any) -> str:
    name = unique("java")
    kwargs.setdefault("MemorySize", 512)
    kwargs.setdefault("Timeout", 30)
    lam.create_function(
        FunctionName=name,
        Runtime=kwargs.pop("Runtime", "java17"),
        Role=ROLE,
        Handler=handler,
        Code={"ZipFile": package},
        **kwargs,
    )
    return name


def raw_invoke(lam: Any, name: str, payload: bytes | str, **kwargs: Any) -> tuple[bytes, dict]:
    resp = lam.invoke(FunctionName=name, Payload=payload, **kwargs)
    return resp["Payload"].read(), resp


def _tail(resp: dict[str, Any]) -> str:
    return base64.b64decode(resp["LogResult"]).decode()


# --- handler styles and JSON mapping -------------------------------------------------------


def test_request_handler_with_pojos(lam: Any, package: bytes) -> None:
    name = java_function(lam, package, "example.Pojo")
    order = {
        "id": "o-1",
        "quantity": 3,
        "price": "2.5",  # a string where a number is declared: coerced, as Jackson does
        "gift": True,
        "items": {"sku": "only", "qty": 12345678901},  # one value where a list is declared
        "counts": {"a": 1, "b": 2},
        "status": "PAID",
        "tags": ["x", "y", "x"],
        "note": "public field",
        "unknown": {"ignored": True},
    }
    body, resp = raw_invoke(lam, name, json.dumps(order))
    assert "FunctionError" not in resp, body
    out = json.loads(body)
    assert out == {
        "orderId": "o-1",
        "total": 7.5,
        "skus": ["onlyx12345678901"],
        "gift": True,
        "status": "PAID",
        "extra": {"counts": {"a": 1, "b": 2}, "note": "public field", "tags": ["x", "y"]},
        "publicField": 7,
        "URL": "https://example.com/o-1",
    }
    # Properties in declaration order, nulls left out (getNothing), JavaBeans names (URL).
    assert list(out) == [
        "orderId",
        "total",
        "skus",
        "gift",
        "status",
        "extra",
        "publicField",
        "URL",
    ]
    # An unknown enum name is null, an empty string an absent object.
    body, _ = raw_invoke(lam, name, json.dumps({**order, "status": "LOST", "items": []}))
    assert json.loads(body)["skus"] == [] and "status" not in json.loads(body)


def test_map_input_keeps_jacksons_number_types(lam: Any, package: bytes) -> None:
    name = java_function(lam, package, "example.Maps")
    event = {"i": 1, "l": 12345678901, "d": 1.5, "b": True, "s": "é", "n": None, "a": [1], "o": {}}
    out, resp = invoke_json(lam, name, event)
    assert "FunctionError" not in resp, out
    assert out["types"] == {
        "i": "java.lang.Integer",
        "l": "java.lang.Long",
        "d": "java.lang.Double",
        "b": "java.lang.Boolean",
        "s": "java.lang.String",
        "n": None,
        "a": "java.util.ArrayList",
        "o": "java.util.LinkedHashMap",
    }
    assert out["echo"] == event
    assert "nullValue" in out and out["nullValue"] is None  # a map's nulls stay


@pytest.mark.parametrize(
    ("handler", "payload", "expected"),
    [
        ("example.Scalars::upper", '"shout"', b'"SHOUT"'),
        ("example.Scalars::twice", "21", b"42"),
        ("example.Scalars::twice", '"21"', b"42"),
        ("example.Scalars::sum", "[1, 2, 3]", b"6"),
        ("example.Scalars::noArgs", "{}", b'"static, no arguments"'),
        ("example.Scalars::ctxOnly", "{}", b"null"),
        ("example.Scalars::streams", '"abc"', b'"cba"'),
        ("example.Scalars::pick", '{"k": "v"}', b'"with context v"'),
        ("example.Streams", '{"raw": true}', None),
    ],
)
def test_plain_methods_and_stream_handlers(
    lam: Any, package: bytes, handler: str, payload: str, expected: bytes | None
) -> None:
    name = java_function(lam, package, handler)
    body, resp = raw_invoke(lam, name, payload)
    assert "FunctionError" not in resp, body
    if expected is None:
        expected = f"raw:{payload}:{name}".encode()
    assert body == expected


def test_context_environment_and_logs(lam: Any, package: bytes) -> None:
    name = java_function(
        lam,
        package,
        "example.Ctx",
        MemorySize=384,
        Timeout=9,
        Environment={
            "Variables": {"MY_VAR": "mine", "AWS_LAMBDA_LOG_LEVEL": "INFO", "TZ": "Europe/Berlin"}
        },
    )
    cc = base64.b64encode(
        json.dumps(
            {"custom": {"k": "v"}, "env": {"e": "x"}, "client": {"installation_id": "i-1"}}
        ).encode()
    ).decode()
    out, resp = invoke_json(lam, name, {"n": 1}, LogType="Tail", ClientContext=cc)
    assert "FunctionError" not in resp, out
    assert out["requestId"] == resp["ResponseMetadata"]["RequestId"]
    assert out["functionName"] == name and out["functionVersion"] == "$LATEST"
    assert out["arn"].endswith(f":function:{name}")
    assert out["memory"] == 384
    assert 7000 < out["remaining"] <= 9000
    assert out["logGroup"] == f"/aws/lambda/{name}" and "[$LATEST]" in out["logStream"]
    assert (out["custom"], out["clientEnv"], out["installationId"]) == (
        {"k": "v"},
        {"e": "x"},
        "i-1",
    )
    assert out["identity"] == "none"
    # A static initialiser, run during Init, already sees the function's environment, and
    # so does a child process (the JVM's own environment was replaced, not just a copy).
    assert out["staticInitSawEnv"] == name
    assert out["myVar"] == "mine" and out["childSees"] == "mine"
    assert out["handlerEnv"] == "example.Ctx"
    assert out["timeZone"] == "Europe/Berlin"
    assert out["javaVersion"].startswith("17")
    if default_sandbox() == "process":
        # The JDK at /var/lang and the code at /var/task, as on Lambda; the runtime's classes
        # come from the class-data-sharing archive made at first use.
        assert (out["javaHome"], out["userDir"]) == ("/var/lang", "/var/task")
        assert out["classDataSharing"] is True
    assert out["relativeRead"] is True  # relative paths resolve in the function's code
    assert out["loader"] is False  # the function's classes come from their own loader
    # Heap at 85 % of MemorySize, as AWS sizes it.
    assert 0.75 * 384 < out["maxHeapMb"] <= 0.85 * 384
    tail = _tail(resp)
    assert "to stdout {n=1}" in tail and "to stderr" in tail
    assert "logger line one\rline two" in tail  # one log event
    assert "[WARN] at warn" in tail and "at debug" not in tail  # AWS_LAMBDA_LOG_LEVEL=INFO
    assert "static logger" in tail
    assert "Init Duration" in tail


def test_exceptions_become_lambdas_error_shape(lam: Any, package: bytes) -> None:
    name = java_function(lam, package, "example.Fails")
    out, resp = invoke_json(lam, name, {"x": 1}, LogType="Tail")
    assert resp["FunctionError"] == "Unhandled"
    assert out["errorType"] == "java.lang.IllegalArgumentException"
    assert out["errorMessage"] == "bad input 1"
    assert isinstance(out["stackTrace"], list)
    assert out["stackTrace"][0].startswith("example.Fails.handleRequest(Fails.java:")
    assert not any("firebox" in frame for frame in out["stackTrace"])
    tail = _tail(resp)
    assert "bad input 1: java.lang.IllegalArgumentException" in tail
    assert "Caused by: java.io.IOException: root cause" in tail
    # The environment survives a handled exception.
    again, resp = invoke_json(lam, name, {"ok": True}, LogType="Tail")
    assert again == "ok after 2" and "Init Duration" not in _tail(resp)


def test_input_that_does_not_map_is_a_parsing_error(lam: Any, package: bytes) -> None:
    name = java_function(lam, package, "example.Pojo")
    out, resp = invoke_json(lam, name, ["not", "an", "order"])
    assert resp["FunctionError"] == "Unhandled"
    assert out["errorType"] == "java.lang.RuntimeException"
    assert out["errorMessage"] == "An error occurred during JSON parsing"
    assert out["stackTrace"] == []


@pytest.mark.parametrize(
    ("handler", "error_type", "message", "at_init"),
    [
        (
            "example.BadInit",
            "java.lang.ExceptionInInitializerError",
            "Error loading class example.BadInit",
            True,
        ),
        ("example.BadCtor", "java.lang.UnsupportedOperationException", "constructor failed", True),
        (
            "example.Nope",
            "java.lang.ClassNotFoundException",
            "Class not found: example.Nope",
            False,
        ),
        (
            "example.NotAHandler",
            None,
            "Class does not implement an appropriate handler interface: example.NotAHandler",
            False,
        ),
        (
            "example.Scalars::missing",
            None,
            "No public method named missing with appropriate method signature found on class "
            "example.Scalars",
            False,
        ),
    ],
)
def test_handler_faults_as_aws_reports_them(
    lam: Any, package: bytes, handler: str, error_type: str | None, message: str, at_init: bool
) -> None:
    name = java_function(lam, package, handler)
    out, resp = invoke_json(lam, name, LogType="Tail")
    assert resp["FunctionError"] == "Unhandled"
    assert out["errorMessage"] == message
    assert out.get("errorType") == error_type
    assert "stackTrace" not in out
    # Init errors end the environment; the others are answered by a live one, every time.
    out2, resp2 = invoke_json(lam, name, LogType="Tail")
    assert out2["errorMessage"] == message
    assert ("Init Duration" in _tail(resp2)) is at_init


def test_aws_event_classes_from_the_functions_lib_jar(lam: Any, package: bytes) -> None:
    scheduled = {
        "version": "0",
        "id": "e-1",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2024-03-05T06:07:08Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/r"],
        "detail": {"k": "v"},
    }
    name = java_function(lam, package, "example.Events::scheduled")
    out, resp = invoke_json(lam, name, scheduled)
    assert "FunctionError" not in resp, out
    assert out == (
        "Scheduled Event|2024-03-05T06:07:08Z|2024|v|"
        "[arn:aws:events:us-east-1:123456789012:rule/r]|123456789012"
    )
    name = java_function(lam, package, "example.Events::echo")
    out, _ = invoke_json(lam, name, scheduled)
    assert out["detail-type"] == "Scheduled Event" and out["time"] == "2024-03-05T06:07:08Z"
    sqs = {
        "Records": [
            {
                "messageId": "m-1",
                "body": "hello",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                "attributes": {"ApproximateReceiveCount": "1"},
            }
        ]
    }
    name = java_function(lam, package, "example.Events::sqs")
    out, _ = invoke_json(lam, name, sqs)
    assert out == "1|m-1|hello|arn:aws:sqs:us-east-1:123456789012:q"
    http = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/items/7",
        "rawQueryString": "a=1",
        "headers": {"host": "example.com"},
        "requestContext": {
            "requestId": "r-1",
            "timeEpoch": 1700000000000,
            "http": {"method": "POST", "path": "/items/7", "sourceIp": "1.2.3.4"},
        },
        "isBase64Encoded": False,
    }
    name = java_function(lam, package, "example.Events::http")
    out, _ = invoke_json(lam, name, http)
    assert out == {
        "statusCode": 201,
        "headers": {"x-method": "POST"},
        "body": "/items/7?a=1 example.com",
    }


def test_layers_jars_are_on_the_class_path(lam: Any) -> None:
    greeter = compile_java(
        {
            "util/Greeter.java": "package util;\npublic class Greeter {\n"
            '  public static String hi() { return "from layer"; }\n}\n'
        }
    )
    layer_jar = jar_of(greeter)
    layer = lam.publish_layer_version(
        LayerName=unique("javalayer"),
        Content={"ZipFile": make_zip({"java/lib/util.jar": layer_jar})},
    )["LayerVersionArn"]
    handler = compile_java(
        {
            "example/UsesLayer.java": "package example;\npublic class UsesLayer {\n"
            "  public String run() { return util.Greeter.hi(); }\n}\n"
        },
        [layer_jar],
    )
    name = java_function(lam, make_zip(dict(handler)), "example.UsesLayer::run", Layers=[layer])
    out, resp = invoke_json(lam, name)
    assert "FunctionError" not in resp, out
    assert out == "from layer"


def test_java_tool_options_start_a_jvm_for_the_function(lam: Any, package: bytes) -> None:
    # The JVM reads JAVA_TOOL_OPTIONS when it starts: such a function cannot use a pooled JVM.
    props = compile_java(
        {
            "example/Props.java": "package example;\npublic class Props {\n"
            '  public String get() { return System.getProperty("firebox.test") + " "\n'
            '      + System.getenv("JAVA_TOOL_OPTIONS"); }\n}\n'
        }
    )
    name = java_function(
        lam,
        make_zip(dict(props)),
        "example.Props::get",
        Environment={"Variables": {"JAVA_TOOL_OPTIONS": "-Dfirebox.test=picked-up"}},
    )
    out, resp = invoke_json(lam, name, LogType="Tail")
    assert out == "picked-up -Dfirebox.test=picked-up"
    assert "Picked up JAVA_TOOL_OPTIONS" in _tail(resp)


@pytest.mark.skipif("java25" not in available_runtimes(), reason="no JDK 25 on this host")
def test_java25_runs_on_its_own_jdk(lam: Any, package: bytes) -> None:
    name = java_function(lam, package, "example.Ctx", Runtime="java25")
    out, resp = invoke_json(lam, name, {"n": 2})
    assert "FunctionError" not in resp, out
    assert out["javaVersion"].startswith("25") and out["myVar"] is None
    assert out["timeZone"] == "UTC"  # Lambda's TZ=:UTC
    if default_sandbox() == "process":
        assert out["classDataSharing"] is True  # an archive of its own, for its own JVM


@pytest.mark.skipif("java21" in available_runtimes(), reason="this host has a JDK 21")
def test_java_runtime_without_its_jdk_is_refused_saying_what_to_install(lam: Any) -> None:
    with pytest.raises(ClientError) as err:
        lam.create_function(
            FunctionName=unique("j21"),
            Runtime="java21",
            Role=ROLE,
            Handler="example.Ctx",
            Code={"ZipFile": make_zip({"x.txt": "x"})},
        )
    error = err.value.response["Error"]
    assert error["Code"] == "InvalidParameterValueException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Message"].startswith("The runtime parameter of java21 is not supported")
    assert "JDK 21" in error["Message"] and "java17" in error["Message"]
