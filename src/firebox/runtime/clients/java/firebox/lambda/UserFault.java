package firebox.lambda;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Set;

/**
 * A problem with the function rather than with one invocation's input: a handler that cannot
 * be loaded or constructed. Fatal faults end the environment (an Init error); others are
 * answered to every invoke, as AWS's Java runtime does.
 */
final class UserFault extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private static final String OUR_PACKAGE = UserFault.class.getPackage().getName() + ".";

    final String msg;
    final String exception;
    final String trace;
    final boolean fatal;

    UserFault(String msg, String exception, String trace, boolean fatal) {
        super(msg, null, false, false);
        this.msg = msg;
        this.exception = exception;
        this.trace = trace;
        this.fatal = fatal;
    }

    static UserFault of(String msg) {
        return new UserFault(msg, null, null, false);
    }

    static UserFault of(Throwable t, boolean fatal) {
        String msg = t.getLocalizedMessage() == null ? t.getClass().getName() : t.getLocalizedMessage();
        return new UserFault(msg, t.getClass().getName(), trace(t), fatal);
    }

    static UserFault loadingClass(Throwable t, String className, boolean fatal) {
        return new UserFault("Error loading class " + className
                + (t.getMessage() == null ? "" : ": " + t.getMessage()), t.getClass().getName(), trace(t), fatal);
    }

    /** What AWS's runtime logs for a fault: message, type, stack trace. */
    String reportable() {
        if (exception != null || trace != null) {
            return String.format("%s: %s\n%s\n", msg, exception == null ? "" : exception, trace == null ? "" : trace);
        }
        return msg + "\n";
    }

    /** Lambda's error JSON for it: no stack trace, as AWS's runtime sends none for faults. */
    String toJson() {
        StringBuilder sb = new StringBuilder();
        Json.Writer w = new Json.Writer(sb);
        sb.append("{\"errorMessage\":");
        w.string(msg);
        if (exception != null) {
            sb.append(",\"errorType\":");
            w.string(exception);
        }
        sb.append('}');
        return sb.toString();
    }

    static String trace(Throwable t) {
        filter(t);
        StringWriter sw = new StringWriter();
        t.printStackTrace(new PrintWriter(sw));
        return sw.toString();
    }

    /** Cut the runtime's own frames (and everything below them) off a stack trace, its
     * causes' and its suppressed exceptions', as AWS's runtime does. */
    static <T extends Throwable> T filter(T t) {
        filter(t, Collections.newSetFromMap(new IdentityHashMap<>()));
        return t;
    }

    private static void filter(Throwable t, Set<Throwable> seen) {
        if (t == null || !seen.add(t)) {
            return;
        }
        StackTraceElement[] trace = t.getStackTrace();
        for (int i = 0; i < trace.length; i++) {
            if (trace[i].getClassName().startsWith(OUR_PACKAGE)) {
                StackTraceElement[] cut = new StackTraceElement[i];
                System.arraycopy(trace, 0, cut, 0, i);
                t.setStackTrace(cut);
                break;
            }
        }
        filter(t.getCause(), seen);
        for (Throwable s : t.getSuppressed()) {
            filter(s, seen);
        }
    }
}
