package firebox.lambda;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;

/**
 * The Lambda Runtime API (2018-06-01) over one kept-alive HTTP/1.1 connection.
 *
 * <p>Written on a plain socket rather than java.net.http: this is every invoke's path, and
 * HttpClient brings threads, an executor and a few hundred classes to a cold start.
 */
final class RuntimeApi {
    private static final String PREFIX = "/2018-06-01/runtime";

    /** One response: status, lower-cased headers, body. */
    static final class Response {
        final int status;
        final Map<String, String> headers;
        final byte[] body;

        Response(int status, Map<String, String> headers, byte[] body) {
            this.status = status;
            this.headers = headers;
            this.body = body;
        }

        String header(String name) {
            return headers.get(name.toLowerCase());
        }
    }

    private final String host;
    private final int port;
    private final String hostHeader;
    private Socket socket;
    private InputStream in;
    private OutputStream out;

    RuntimeApi(String address) {
        int colon = address.lastIndexOf(':');
        this.host = address.substring(0, colon);
        this.port = Integer.parseInt(address.substring(colon + 1));
        this.hostHeader = address;
    }

    private void connect() throws IOException {
        Socket s = new Socket();
        s.setTcpNoDelay(true);
        s.connect(new InetSocketAddress(host, port));
        socket = s;
        in = new BufferedInputStream(s.getInputStream(), 65536);
        out = s.getOutputStream();
    }

    private void close() {
        if (socket != null) {
            try {
                socket.close();
            } catch (IOException e) {
                // already gone
            }
        }
        socket = null;
    }

    Response next() throws IOException {
        Response r = request("GET", "/invocation/next", new byte[0], null);
        if (r.status != 200) {
            throw new IOException("Runtime API /next answered " + r.status);
        }
        return r;
    }

    void respond(String requestId, byte[] body) throws IOException {
        request("POST", "/invocation/" + requestId + "/response", body, null);
    }

    void error(String requestId, String errorType, byte[] body) throws IOException {
        request("POST", "/invocation/" + requestId + "/error", body, errorType);
    }

    void initError(String errorType, byte[] body) throws IOException {
        request("POST", "/init/error", body, errorType);
    }

    private Response request(String method, String path, byte[] body, String errorType) throws IOException {
        StringBuilder head = new StringBuilder(160);
        head.append(method).append(' ').append(PREFIX).append(path).append(" HTTP/1.1\r\nHost: ")
                .append(hostHeader).append("\r\nContent-Length: ").append(body.length).append("\r\n");
        if (errorType != null) {
            head.append("Lambda-Runtime-Function-Error-Type: ").append(errorType)
                    .append("\r\nContent-Type: application/json\r\n");
        }
        head.append("\r\n");
        byte[] headBytes = head.toString().getBytes(StandardCharsets.ISO_8859_1);
        for (int attempt = 0; ; attempt++) {
            if (socket == null) {
                connect();
            }
            try {
                out.write(headBytes);
                if (body.length > 0) {
                    out.write(body);
                }
                out.flush();
                return readResponse();
            } catch (IOException e) {
                // The server may have closed an idle kept-alive connection: reconnect once.
                close();
                if (attempt > 0) {
                    throw e;
                }
            }
        }
    }

    private String readLine() throws IOException {
        ByteArrayOutputStream line = new ByteArrayOutputStream(64);
        while (true) {
            int b = in.read();
            if (b < 0) {
                throw new IOException("the Runtime API closed the connection");
            }
            if (b == '\n') {
                byte[] bytes = line.toByteArray();
                int n = bytes.length;
                if (n > 0 && bytes[n - 1] == '\r') {
                    n--;
                }
                return new String(bytes, 0, n, StandardCharsets.ISO_8859_1);
            }
            line.write(b);
        }
    }

    private Response readResponse() throws IOException {
        String status = readLine();
        int sp = status.indexOf(' ');
        int code = Integer.parseInt(status.substring(sp + 1, sp + 4));
        Map<String, String> headers = new HashMap<>();
        while (true) {
            String line = readLine();
            if (line.isEmpty()) {
                break;
            }
            int colon = line.indexOf(':');
            if (colon > 0) {
                headers.put(line.substring(0, colon).trim().toLowerCase(), line.substring(colon + 1).trim());
            }
        }
        byte[] body;
        if ("chunked".equalsIgnoreCase(headers.get("transfer-encoding"))) {
            ByteArrayOutputStream all = new ByteArrayOutputStream();
            while (true) {
                String sizeLine = readLine();
                int semi = sizeLine.indexOf(';');
                int size = Integer.parseInt((semi >= 0 ? sizeLine.substring(0, semi) : sizeLine).trim(), 16);
                if (size == 0) {
                    while (!readLine().isEmpty()) {
                        // trailers
                    }
                    break;
                }
                all.write(readExactly(size));
                readLine();
            }
            body = all.toByteArray();
        } else {
            String length = headers.get("content-length");
            body = readExactly(length == null ? 0 : Integer.parseInt(length));
        }
        if ("close".equalsIgnoreCase(headers.get("connection"))) {
            close();
        }
        return new Response(code, headers, body);
    }

    private byte[] readExactly(int n) throws IOException {
        byte[] buf = new byte[n];
        int off = 0;
        while (off < n) {
            int got = in.read(buf, off, n - off);
            if (got < 0) {
                throw new IOException("the Runtime API closed the connection");
            }
            off += got;
        }
        return buf;
    }
}
