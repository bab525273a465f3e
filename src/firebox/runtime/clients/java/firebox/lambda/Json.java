package firebox.lambda;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A small JSON reader and writer, so that the runtime needs no third-party jar.
 *
 * <p>The reader gives a tree of LinkedHashMap, ArrayList, String, Boolean, null and
 * {@link Num} (a number that keeps its text, so that a long or a BigDecimal target loses
 * nothing); {@link #natural} turns Num into the Integer / Long / BigInteger / Double that
 * Jackson gives an untyped target. The writer writes what Jackson writes for the same values:
 * non-ASCII characters unescaped, control characters escaped, NaN and infinities as strings.
 */
public final class Json {
    private Json() {}

    /** A JSON number as written, converted on demand. */
    public static final class Num extends Number {
        private static final long serialVersionUID = 1L;
        public final String text;
        public final boolean integral;

        Num(String text, boolean integral) {
            this.text = text;
            this.integral = integral;
        }

        public int intValue() {
            return integral ? bigInteger().intValue() : (int) doubleValue();
        }

        public long longValue() {
            return integral ? bigInteger().longValue() : (long) doubleValue();
        }

        public float floatValue() {
            return Float.parseFloat(text);
        }

        public double doubleValue() {
            return Double.parseDouble(text);
        }

        public BigInteger bigInteger() {
            return integral ? new BigInteger(text) : bigDecimal().toBigInteger();
        }

        public BigDecimal bigDecimal() {
            return new BigDecimal(text);
        }

        /** What Jackson gives an Object target: the smallest integer type that holds it, or
         * a Double. */
        public Object natural() {
            if (!integral) {
                return Double.valueOf(text);
            }
            int digits = text.length() - (text.charAt(0) == '-' ? 1 : 0);
            if (digits <= 9) {
                return Integer.valueOf(text);
            }
            if (digits <= 18) {
                long v = Long.parseLong(text);
                return (v == (int) v) ? (Object) Integer.valueOf((int) v) : (Object) Long.valueOf(v);
            }
            BigInteger big = new BigInteger(text);
            if (big.bitLength() < 32) {
                return Integer.valueOf(big.intValue());
            }
            if (big.bitLength() < 64) {
                return Long.valueOf(big.longValue());
            }
            return big;
        }

        public String toString() {
            return text;
        }
    }

    /** Thrown for malformed JSON, with where it went wrong. */
    public static final class ParseException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        ParseException(String message) {
            super(message);
        }
    }

    // --- reading ---------------------------------------------------------------------

    public static Object parse(String text) {
        Reader r = new Reader(text);
        r.skipSpace();
        if (r.pos >= text.length()) {
            throw new ParseException("No content to map due to end-of-input");
        }
        Object value = r.value(0);
        r.skipSpace();
        if (r.pos < text.length()) {
            throw r.error("Unexpected character ('" + text.charAt(r.pos) + "'): expected end-of-input");
        }
        return value;
    }

    /** The tree with every Num replaced by its natural Java number. */
    @SuppressWarnings("unchecked")
    public static Object natural(Object tree) {
        if (tree instanceof Num) {
            return ((Num) tree).natural();
        }
        if (tree instanceof Map) {
            Map<String, Object> map = (Map<String, Object>) tree;
            for (Map.Entry<String, Object> e : map.entrySet()) {
                e.setValue(natural(e.getValue()));
            }
        } else if (tree instanceof List) {
            List<Object> list = (List<Object>) tree;
            for (int i = 0; i < list.size(); i++) {
                list.set(i, natural(list.get(i)));
            }
        }
        return tree;
    }

    private static final class Reader {
        private static final int MAX_DEPTH = 1000;
        final String s;
        int pos;

        Reader(String s) {
            this.s = s;
        }

        ParseException error(String message) {
            int line = 1;
            int col = 1;
            for (int i = 0; i < pos && i < s.length(); i++) {
                if (s.charAt(i) == '\n') {
                    line++;
                    col = 1;
                } else {
                    col++;
                }
            }
            return new ParseException(message + " at [line: " + line + ", column: " + col + "]");
        }

        void skipSpace() {
            while (pos < s.length()) {
                char c = s.charAt(pos);
                if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
                    pos++;
                } else {
                    return;
                }
            }
        }

        Object value(int depth) {
            if (depth > MAX_DEPTH) {
                throw error("JSON nested too deeply");
            }
            skipSpace();
            if (pos >= s.length()) {
                throw error("Unexpected end-of-input");
            }
            char c = s.charAt(pos);
            switch (c) {
                case '{':
                    return object(depth);
                case '[':
                    return array(depth);
                case '"':
                    return string();
                case 't':
                    return literal("true", Boolean.TRUE);
                case 'f':
                    return literal("false", Boolean.FALSE);
                case 'n':
                    return literal("null", null);
                case 'N':
                    return literal("NaN", new Num("NaN", false));
                case 'I':
                    return literal("Infinity", new Num("Infinity", false));
                default:
                    if (c == '-' && s.startsWith("-Infinity", pos)) {
                        return literal("-Infinity", new Num("-Infinity", false));
                    }
                    if (c == '-' || (c >= '0' && c <= '9')) {
                        return number();
                    }
                    throw error("Unexpected character ('" + c + "')");
            }
        }

        Object literal(String word, Object value) {
            if (!s.startsWith(word, pos)) {
                throw error("Unrecognized token");
            }
            pos += word.length();
            return value;
        }

        Num number() {
            int start = pos;
            boolean integral = true;
            if (s.charAt(pos) == '-') {
                pos++;
            }
            int digits = pos;
            while (pos < s.length() && Character.isDigit(s.charAt(pos))) {
                pos++;
            }
            if (pos == digits) {
                throw error("Unexpected character: expected digit");
            }
            if (pos < s.length() && s.charAt(pos) == '.') {
                integral = false;
                pos++;
                int frac = pos;
                while (pos < s.length() && Character.isDigit(s.charAt(pos))) {
                    pos++;
                }
                if (pos == frac) {
                    throw error("Decimal point not followed by a digit");
                }
            }
            if (pos < s.length() && (s.charAt(pos) == 'e' || s.charAt(pos) == 'E')) {
                integral = false;
                pos++;
                if (pos < s.length() && (s.charAt(pos) == '+' || s.charAt(pos) == '-')) {
                    pos++;
                }
                int exp = pos;
                while (pos < s.length() && Character.isDigit(s.charAt(pos))) {
                    pos++;
                }
                if (pos == exp) {
                    throw error("Exponent indicator not followed by a digit");
                }
            }
            return new Num(s.substring(start, pos), integral);
        }

        String string() {
            pos++; // opening quote
            StringBuilder out = null;
            int start = pos;
            while (true) {
                if (pos >= s.length()) {
                    throw error("Unexpected end-of-input in a string");
                }
                char c = s.charAt(pos);
                if (c == '"') {
                    String result = out == null ? s.substring(start, pos) : out.append(s, start, pos).toString();
                    pos++;
                    return result;
                }
                if (c == '\\') {
                    if (out == null) {
                        out = new StringBuilder();
                    }
                    out.append(s, start, pos);
                    pos++;
                    if (pos >= s.length()) {
                        throw error("Unexpected end-of-input in an escape");
                    }
                    char e = s.charAt(pos++);
                    switch (e) {
                        case 'n': out.append('\n'); break;
                        case 't': out.append('\t'); break;
                        case 'r': out.append('\r'); break;
                        case 'b': out.append('\b'); break;
                        case 'f': out.append('\f'); break;
                        case 'u':
                            if (pos + 4 > s.length()) {
                                throw error("Unexpected end-of-input in a unicode escape");
                            }
                            try {
                                out.append((char) Integer.parseInt(s.substring(pos, pos + 4), 16));
                            } catch (NumberFormatException ex) {
                                throw error("Illegal unicode escape");
                            }
                            pos += 4;
                            break;
                        default:
                            out.append(e); // \" \\ \/ and, as Jackson here allows, any other
                    }
                    start = pos;
                    continue;
                }
                pos++;
            }
        }

        Map<String, Object> object(int depth) {
            pos++;
            Map<String, Object> map = new LinkedHashMap<>();
            skipSpace();
            if (pos < s.length() && s.charAt(pos) == '}') {
                pos++;
                return map;
            }
            while (true) {
                skipSpace();
                if (pos >= s.length() || s.charAt(pos) != '"') {
                    throw error("Unexpected character: was expecting double-quote to start field name");
                }
                String key = string();
                skipSpace();
                if (pos >= s.length() || s.charAt(pos) != ':') {
                    throw error("Unexpected character: was expecting a colon to separate field name and value");
                }
                pos++;
                map.put(key, value(depth + 1));
                skipSpace();
                if (pos >= s.length()) {
                    throw error("Unexpected end-of-input: expected close marker for Object");
                }
                char c = s.charAt(pos++);
                if (c == '}') {
                    return map;
                }
                if (c != ',') {
                    pos--;
                    throw error("Unexpected character ('" + c + "'): was expecting comma to separate Object entries");
                }
            }
        }

        List<Object> array(int depth) {
            pos++;
            List<Object> list = new ArrayList<>();
            skipSpace();
            if (pos < s.length() && s.charAt(pos) == ']') {
                pos++;
                return list;
            }
            while (true) {
                list.add(value(depth + 1));
                skipSpace();
                if (pos >= s.length()) {
                    throw error("Unexpected end-of-input: expected close marker for Array");
                }
                char c = s.charAt(pos++);
                if (c == ']') {
                    return list;
                }
                if (c != ',') {
                    pos--;
                    throw error("Unexpected character ('" + c + "'): was expecting comma to separate Array entries");
                }
            }
        }
    }

    // --- writing ---------------------------------------------------------------------

    /** Appends JSON text; the Binder drives it for POJOs. */
    public static final class Writer {
        final StringBuilder out;

        public Writer(StringBuilder out) {
            this.out = out;
        }

        public void nul() {
            out.append("null");
        }

        public void bool(boolean b) {
            out.append(b ? "true" : "false");
        }

        public void raw(String numberText) {
            out.append(numberText);
        }

        public void number(Number n) {
            if (n instanceof Double || n instanceof Float) {
                double d = n.doubleValue();
                if (Double.isNaN(d) || Double.isInfinite(d)) {
                    string(n.toString());
                    return;
                }
            }
            out.append(n.toString());
        }

        public void string(String s) {
            out.append('"');
            int start = 0;
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                String esc = null;
                if (c == '"') {
                    esc = "\\\"";
                } else if (c == '\\') {
                    esc = "\\\\";
                } else if (c < 0x20) {
                    switch (c) {
                        case '\n': esc = "\\n"; break;
                        case '\t': esc = "\\t"; break;
                        case '\r': esc = "\\r"; break;
                        case '\b': esc = "\\b"; break;
                        case '\f': esc = "\\f"; break;
                        default: esc = String.format("\\u%04X", (int) c);
                    }
                }
                if (esc != null) {
                    out.append(s, start, i).append(esc);
                    start = i + 1;
                }
            }
            out.append(s, start, s.length()).append('"');
        }
    }

    /** JSON text of a tree of maps, lists, strings, numbers, booleans and nulls. */
    public static String write(Object tree) {
        StringBuilder sb = new StringBuilder();
        writeTree(new Writer(sb), tree);
        return sb.toString();
    }

    static void writeTree(Writer w, Object v) {
        if (v == null) {
            w.nul();
        } else if (v instanceof String) {
            w.string((String) v);
        } else if (v instanceof Num) {
            w.raw(((Num) v).text);
        } else if (v instanceof Number) {
            w.number((Number) v);
        } else if (v instanceof Boolean) {
            w.bool((Boolean) v);
        } else if (v instanceof Map) {
            w.out.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
                if (!first) {
                    w.out.append(',');
                }
                first = false;
                w.string(String.valueOf(e.getKey()));
                w.out.append(':');
                writeTree(w, e.getValue());
            }
            w.out.append('}');
        } else if (v instanceof Iterable) {
            w.out.append('[');
            Iterator<?> it = ((Iterable<?>) v).iterator();
            boolean first = true;
            while (it.hasNext()) {
                if (!first) {
                    w.out.append(',');
                }
                first = false;
                writeTree(w, it.next());
            }
            w.out.append(']');
        } else {
            w.string(v.toString());
        }
    }
}
