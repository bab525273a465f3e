package firebox.lambda;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The runtime's own work, done once before any function is known: a pooled JVM runs it
 * while it waits (so its classes are loaded and its hot paths compiled off the cold path),
 * and the class-data-sharing archive is dumped from a run of it. It must not read the
 * environment (see NativeEnv).
 */
final class Warmup {
    private Warmup() {}

    /** A bean of the shapes handlers use. */
    public static final class Sample {
        private String name;
        private int count;
        private boolean enabled;
        private List<String> tags = new ArrayList<>();
        private Map<String, Object> detail = new LinkedHashMap<>();
        public Long total;

        public String getName() {
            return name;
        }

        public void setName(String name) {
            this.name = name;
        }

        public int getCount() {
            return count;
        }

        public void setCount(int count) {
            this.count = count;
        }

        public boolean isEnabled() {
            return enabled;
        }

        public void setEnabled(boolean enabled) {
            this.enabled = enabled;
        }

        public List<String> getTags() {
            return tags;
        }

        public void setTags(List<String> tags) {
            this.tags = tags;
        }

        public Map<String, Object> getDetail() {
            return detail;
        }

        public void setDetail(Map<String, Object> detail) {
            this.detail = detail;
        }
    }

    /** A handler of the RequestHandler shape. */
    public static final class SampleHandler implements RequestHandler<Sample, Map<String, Object>> {
        public Map<String, Object> handleRequest(Sample input, Context context) {
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("name", input.getName());
            out.put("count", input.getCount() + 1);
            out.put("tags", input.getTags());
            out.put("remaining", context == null ? 0 : context.getRemainingTimeInMillis());
            return out;
        }
    }

    private static final String EVENT = "{\"name\":\"warm\",\"count\":41,\"enabled\":true,"
            + "\"tags\":[\"a\",\"b\"],\"detail\":{\"x\":1.5,\"y\":[null,false,\"\\u00e9\"]},"
            + "\"total\":12345678901,\"unknown\":{}}";

    /** Warm up until ``config`` (the function's configuration, when it is on its way) has
     * something to read: a JVM started for a function that is already known goes straight
     * to it. */
    static void run(InputStream config) throws Throwable {
        Handlers.Invoker invoker = Handlers.load(SampleHandler.class.getName(), Warmup.class.getClassLoader());
        byte[] payload = EVENT.getBytes(StandardCharsets.UTF_8);
        for (int i = 0; i < 300; i++) {
            if (i % 50 == 0 && arrived(config)) {
                return;
            }
            invoker.call(payload, null);
            Json.write(Json.natural(Json.parse(EVENT)));
        }
        try {
            throw new IllegalStateException("warm-up");
        } catch (IllegalStateException e) {
            UserFault.of(e, false).reportable();
        }
        if (arrived(config)) {
            return;
        }
        exchange(payload);
        loadFromJar();
        if (arrived(config)) {
            return;
        }
        // The steps between the configuration's arrival and the first /next.
        if (config != null) {
            NativeEnv.slots();
        }
        java.util.TimeZone.getTimeZone("UTC");
        Main.customerLoader("/var/task", "/opt").getParent();
    }

    private static boolean arrived(InputStream config) throws IOException {
        return config != null && config.available() > 0;
    }

    /** One /next and one /response with the real client, against a loopback stand-in. */
    private static void exchange(final byte[] event) throws Throwable {
        try (final ServerSocket server = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            Thread t = new Thread(new Runnable() {
                public void run() {
                    serve(server, event);
                }
            });
            t.setDaemon(true);
            t.start();
            RuntimeApi api = new RuntimeApi("127.0.0.1:" + server.getLocalPort());
            RuntimeApi.Response next = api.next();
            Invocation context = new Invocation(next, null, null);
            Handlers.Invoker invoker = Handlers.load(SampleHandler.class.getName(), Warmup.class.getClassLoader());
            api.respond(context.getAwsRequestId(), invoker.call(next.body, context));
            t.join(2000);
        }
    }

    private static void serve(ServerSocket server, byte[] event) {
        try (Socket s = server.accept()) {
            BufferedReader in = new BufferedReader(new InputStreamReader(s.getInputStream(),
                    StandardCharsets.ISO_8859_1));
            OutputStream out = s.getOutputStream();
            for (int request = 0; request < 2; request++) {
                int length = 0;
                String line;
                while ((line = in.readLine()) != null && !line.isEmpty()) {
                    if (line.toLowerCase().startsWith("content-length:")) {
                        length = Integer.parseInt(line.substring(15).trim());
                    }
                }
                for (int i = 0; i < length; i++) {
                    in.read();
                }
                byte[] body = request == 0 ? event : "{}".getBytes(StandardCharsets.US_ASCII);
                String head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        + "Lambda-Runtime-Aws-Request-Id: warm-up\r\n"
                        + "Lambda-Runtime-Deadline-Ms: " + (System.currentTimeMillis() + 1000) + "\r\n"
                        + "Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:000000000000:function:warm\r\n"
                        + "Lambda-Runtime-Client-Context: {\"custom\":{\"k\":\"v\"}}\r\n"
                        + "Content-Length: " + body.length + "\r\n\r\n";
                out.write(head.getBytes(StandardCharsets.ISO_8859_1));
                out.write(body);
                out.flush();
            }
        } catch (Exception e) {
            // a warm-up that fails only leaves the cold path a little colder
    }
    }

    /** A class through a URLClassLoader from a jar, as the function's classes will come. */
    private static void loadFromJar() throws Exception {
        String path = System.getProperty("java.class.path", "");
        for (String entry : path.split(File.pathSeparator)) {
            if (entry.endsWith(".jar") && new File(entry).isFile()) {
                try (URLClassLoader loader = new URLClassLoader(new URL[] {new File(entry).toURI().toURL()}, null)) {
                    Class.forName(Sample.class.getName(), true, loader);
                }
                return;
            }
        }
    }
}
