package firebox.lambda;

import com.amazonaws.services.lambda.runtime.LambdaLogger;
import com.amazonaws.services.lambda.runtime.LambdaRuntime;
import com.amazonaws.services.lambda.runtime.logging.LogLevel;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOError;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.lang.reflect.Field;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TimeZone;

/**
 * Firebox's Java runtime client: speaks the Lambda Runtime API and runs one handler, as AWS's
 * Java runtime does. Only the JDK: no third-party jar.
 *
 * <p>Started as {@code java … firebox.lambda.Main}. With {@code -Dfirebox.configFd=N} it was
 * started before its function was known (a pooled environment): it warms itself up, then
 * waits for the function's environment on that descriptor. {@code --train} runs the warm-up
 * only (the class-data-sharing archive is dumped from it).
 */
public final class Main {
    private Main() {}

    /** The parts of the environment every invocation's Context reports. */
    static final class Environment {
        final String functionName = System.getenv("AWS_LAMBDA_FUNCTION_NAME");
        final String functionVersion = System.getenv("AWS_LAMBDA_FUNCTION_VERSION");
        final String logGroup = System.getenv("AWS_LAMBDA_LOG_GROUP_NAME");
        final String logStream = System.getenv("AWS_LAMBDA_LOG_STREAM_NAME");
        final int memoryMb = parseInt(System.getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"), 128);

        private static int parseInt(String s, int dflt) {
            try {
                return s == null ? dflt : Integer.parseInt(s.trim());
            } catch (NumberFormatException e) {
                return dflt;
            }
        }
    }

    /** LambdaLogger: each call is one log event (inner newlines become carriage returns,
     * which the log pipe does not split on), filtered by AWS_LAMBDA_LOG_LEVEL. */
    static final class Logger implements LambdaLogger {
        private final PrintStream out;
        private final LogLevel min;

        Logger(PrintStream out, String level) {
            this.out = out;
            LogLevel parsed = LogLevel.UNDEFINED;
            if (level != null && !level.isEmpty()) {
                try {
                    parsed = LogLevel.fromString(level);
                } catch (IllegalArgumentException e) {
                    parsed = LogLevel.UNDEFINED;
                }
            }
            this.min = parsed;
        }

        private boolean enabled(LogLevel level) {
            return level == null || level == LogLevel.UNDEFINED || level.ordinal() >= min.ordinal();
        }

        public void log(String message) {
            log(message, LogLevel.UNDEFINED);
        }

        public void log(byte[] message) {
            log(message, LogLevel.UNDEFINED);
        }

        public void log(String message, LogLevel level) {
            if (!enabled(level)) {
                return;
            }
            String text = message == null ? "null" : message;
            if (level != null && level != LogLevel.UNDEFINED) {
                text = "[" + level + "] " + text;
            }
            emit(text.getBytes(StandardCharsets.UTF_8));
        }

        public void log(byte[] message, LogLevel level) {
            if (enabled(level)) {
                emit(message == null ? "null".getBytes(StandardCharsets.US_ASCII) : message);
            }
        }

        void emit(byte[] message) {
            int end = message.length;
            while (end > 0 && message[end - 1] == '\n') {
                end--;
            }
            byte[] event = new byte[end + 1];
            for (int i = 0; i < end; i++) {
                event[i] = message[i] == '\n' ? (byte) '\r' : message[i];
            }
            event[end] = '\n';
            synchronized (out) {
                out.write(event, 0, event.length);
                out.flush();
            }
        }
    }

    public static void main(String[] args) throws Throwable {
        setStreams();
        if (args.length > 0 && "--train".equals(args[0])) {
            Warmup.run(null);
            return;
        }
        String configFd = System.getProperty("firebox.configFd");
        if (configFd != null) {
            InputStream config = "0".equals(configFd) ? new FileInputStream(FileDescriptor.in)
                    : new FileInputStream("/proc/self/fd/" + configFd);
            Warmup.run(config);
            Map<String, String> env = readConfig(config);
            NativeEnv.replace(env);
            // The JVM started with TZ=:UTC; a function that names another zone gets it.
            String tz = env.get("TZ");
            if (tz != null && !tz.isEmpty() && !":UTC".equals(tz) && !"UTC".equals(tz)) {
                String id = tz.startsWith(":") ? tz.substring(1) : tz;
                TimeZone.setDefault(TimeZone.getTimeZone(id));
            }
        }
        run();
    }

    /** The function's configuration. The pipe is PID 1's (root's): a JVM running as nobody
     * can read the descriptor it inherited but not reopen it through /proc, so it comes as
     * standard input. */
    @SuppressWarnings("unchecked")
    private static Map<String, String> readConfig(InputStream config) throws IOException {
        ByteArrayOutputStream data = new ByteArrayOutputStream(4096);
        try (InputStream in = config) {
            // Not readAllBytes: JDK 17's seeks, which a pipe refuses.
            byte[] buf = new byte[8192];
            int n;
            while ((n = in.read(buf)) > 0) {
                data.write(buf, 0, n);
            }
        }
        Map<String, Object> parsed = (Map<String, Object>) Json.parse(data.toString("UTF-8"));
        Map<String, String> env = new LinkedHashMap<>();
        for (Map.Entry<String, Object> e : ((Map<String, Object>) parsed.get("env")).entrySet()) {
            env.put(e.getKey(), String.valueOf(e.getValue()));
        }
        return env;
    }

    private static void setRuntimeLogger(LambdaLogger logger) {
        try {
            Field f = LambdaRuntime.class.getDeclaredField("logger");
            f.setAccessible(true);
            f.set(null, logger);
        } catch (ReflectiveOperationException | RuntimeException e) {
            // LambdaRuntime.getLogger() keeps printing to stdout
        }
    }

    private static final java.io.FilenameFilter JARS = new java.io.FilenameFilter() {
        public boolean accept(File dir, String name) {
            return name.length() > 4 && name.endsWith(".jar");
        }
    };

    /** The function's class loader, as AWS's runtime builds it: the task root, its lib/*.jar,
     * then the layers' java/lib/*.jar, each directory's jars in lexical order. */
    static ClassLoader customerLoader(String taskRoot, String optRoot) throws IOException {
        List<URL> urls = new ArrayList<>();
        urls.add(new URL("file", null, -1, taskRoot + "/"));
        for (String dir : new String[] {taskRoot + "/lib", optRoot + "/java/lib"}) {
            String[] names = new File(dir).list(JARS);
            if (names == null) {
                continue;
            }
            Arrays.sort(names);
            for (String n : names) {
                urls.add(new URL("file", null, -1, dir + "/" + n));
            }
        }
        return new URLClassLoader(urls.toArray(new URL[0]), ClassLoader.getSystemClassLoader());
    }

    private static void flushOutput() {
        System.out.flush();
        System.err.flush();
    }

    private static byte[] errorJson(Throwable t) {
        StringBuilder sb = new StringBuilder(256);
        Json.Writer w = new Json.Writer(sb);
        String msg = t.getLocalizedMessage() == null ? t.getClass().getName() : t.getLocalizedMessage();
        sb.append("{\"errorMessage\":");
        w.string(msg);
        sb.append(",\"errorType\":");
        w.string(t.getClass().getName());
        sb.append(",\"stackTrace\":[");
        StackTraceElement[] trace = t.getStackTrace();
        for (int i = 0; i < trace.length; i++) {
            if (i > 0) {
                sb.append(',');
            }
            w.string(trace[i].toString());
        }
        sb.append("]}");
        return sb.toString().getBytes(StandardCharsets.UTF_8);
    }

    /** Unbuffered UTF-8 streams: a line reaches the log the moment it is printed, so it is
     * attributed to the invocation that printed it, and a crash loses nothing. */
    static void setStreams() throws IOException {
        System.setOut(new PrintStream(new FileOutputStream(FileDescriptor.out), true, "UTF-8"));
        System.setErr(new PrintStream(new FileOutputStream(FileDescriptor.err), true, "UTF-8"));
    }

    private static void run() throws Exception {
        PrintStream stdout = System.out;
        Logger logger = new Logger(stdout, System.getenv("AWS_LAMBDA_LOG_LEVEL"));
        setRuntimeLogger(logger);
        Environment env = new Environment();
        String api = System.getenv("AWS_LAMBDA_RUNTIME_API");
        RuntimeApi client = new RuntimeApi(api == null ? "127.0.0.1:9001" : api);
        String taskRoot = System.getenv("LAMBDA_TASK_ROOT");
        String optRoot = System.getenv("FIREBOX_OPT_DIR");
        ClassLoader loader = customerLoader(taskRoot == null ? "/var/task" : taskRoot,
                optRoot == null ? "/opt" : optRoot);
        Thread.currentThread().setContextClassLoader(loader);
        String handler = System.getenv("_HANDLER");
        Handlers.Invoker invoker;
        try {
            invoker = Handlers.load(handler == null ? "" : handler, loader);
        } catch (Throwable t) {
            UserFault fault = t instanceof UserFault ? (UserFault) t : UserFault.of(t, true);
            flushOutput();
            logger.emit(fault.reportable().getBytes(StandardCharsets.UTF_8));
            client.initError("Runtime.BadFunctionCode", fault.toJson().getBytes(StandardCharsets.UTF_8));
            System.exit(1);
            return;
        }
        while (true) {
            RuntimeApi.Response next = client.next();
            Invocation context = new Invocation(next, env, logger);
            if (context.traceId() != null) {
                System.setProperty("com.amazonaws.xray.traceHeader", context.traceId());
            } else {
                System.clearProperty("com.amazonaws.xray.traceHeader");
            }
            byte[] result;
            try {
                result = invoker.call(next.body, context);
            } catch (Throwable t) {
                UserFault.filter(t);
                UserFault fault = t instanceof UserFault ? (UserFault) t : UserFault.of(t, false);
                boolean fatal = t instanceof VirtualMachineError || t instanceof IOError || fault.fatal;
                flushOutput();
                logger.emit(fault.reportable().getBytes(StandardCharsets.UTF_8));
                if (t instanceof UserFault) {
                    client.error(context.getAwsRequestId(), "Runtime.BadFunctionCode",
                            fault.toJson().getBytes(StandardCharsets.UTF_8));
                } else {
                    client.error(context.getAwsRequestId(), "Runtime.UserException", errorJson(t));
                }
                if (fatal) {
                    System.exit(1);
                }
                continue;
            }
            flushOutput();
            client.respond(context.getAwsRequestId(), result);
            Thread.interrupted(); // a flag the handler left set must not break the next read
        }
    }
}
