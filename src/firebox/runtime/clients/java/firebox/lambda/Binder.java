package firebox.lambda;

import java.lang.reflect.Array;
import java.lang.reflect.Constructor;
import java.lang.reflect.GenericArrayType;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.RecordComponent;
import java.lang.reflect.Type;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.net.URI;
import java.net.URL;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.time.Instant;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.LocalTime;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.time.temporal.TemporalAccessor;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Calendar;
import java.util.Collection;
import java.util.Collections;
import java.util.Date;
import java.util.EnumMap;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalInt;
import java.util.OptionalLong;
import java.util.Queue;
import java.util.Set;
import java.util.SortedMap;
import java.util.SortedSet;
import java.util.TimeZone;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.UUID;

/**
 * Maps JSON to a handler's input type and its output back to JSON, by reflection, the way
 * AWS's Java runtime configures Jackson for it:
 *
 * <ul>
 *   <li>properties are public getters (isX only for {@code boolean}), setters of any
 *       visibility and public fields, named by the JavaBeans rule (getURL is "URL");
 *   <li>unknown properties are ignored; a single value is accepted where an array is
 *       expected and a one-element array where a single value is; an empty string or array
 *       is null for an object; unknown enum names are null; scalars are coerced (5 to "5",
 *       "5" to 5);
 *   <li>nulls are left out of the output; dates are epoch milliseconds, java.time values
 *       Jackson's JavaTimeModule shapes;
 *   <li>AWS's event classes (aws-lambda-java-events, in the function's own jar) get the names
 *       AWS's runtime gives them ("Records", "eventSourceARN", "detail-type", SNS in
 *       UpperCamelCase …), dates as epoch seconds, and Joda DateTime as ISO strings.
 * </ul>
 *
 * <p>Jackson annotations in the function's classes are ignored, as AWS's runtime (which uses
 * its own shaded Jackson) ignores them.
 */
public final class Binder {
    /** A value that cannot be mapped; the runtime reports it as a JSON parsing error. */
    public static final class BindException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        BindException(String message) {
            super(message);
        }

        BindException(String message, Throwable cause) {
            super(message, cause);
        }
    }

    private static final Binder PLAIN = new Binder(false, false);
    private static final Binder EVENT = new Binder(true, false);
    private static final Binder EVENT_UPPER = new Binder(true, true);

    /** The binder AWS's runtime would use for a handler's declared input or output type. */
    public static Binder forType(Type type) {
        Class<?> raw = Types.rawClass(type);
        if (raw != null && Beans.isEvent(raw.getName())) {
            return Beans.isUpperCamel(raw.getName()) ? EVENT_UPPER : EVENT;
        }
        return PLAIN;
    }


    private final boolean events;
    private final Beans beans;

    private Binder(boolean events, boolean upperCamel) {
        this.events = events;
        this.beans = new Beans(upperCamel);
    }

    // --- reading: a JSON tree to a Java value ----------------------------------------

    /** The tree as an instance of ``type``; BindException when it cannot be. */
    public Object read(Object tree, Type type) {
        return read(tree, type, 0);
    }

    @SuppressWarnings({"unchecked", "rawtypes"})
    private Object read(Object tree, Type type, int depth) {
        if (depth > 500) {
            throw new BindException("JSON nested too deeply to map");
        }
        Class<?> raw = Types.rawClass(type);
        if (raw == null || raw == Object.class || raw == java.io.Serializable.class || raw == Comparable.class) {
            return Json.natural(tree);
        }
        if (raw == Void.class || raw == void.class) {
            return null;
        }
        if (tree == null) {
            return nullFor(raw);
        }
        if (raw == Optional.class) {
            return Optional.ofNullable(read(tree, Types.typeArg(type, 0), depth + 1));
        }
        if (raw.isPrimitive() || isScalar(raw)) {
            if (tree instanceof List && ((List<?>) tree).size() == 1) {
                return read(((List<?>) tree).get(0), type, depth + 1);
            }
            return scalar(tree, raw);
        }
        if (raw.isArray()) {
            if (raw == byte[].class && tree instanceof String) {
                return Base64.getMimeDecoder().decode((String) tree);
            }
            if ("".equals(tree)) {
                return null;
            }
            Type component = type instanceof GenericArrayType
                    ? ((GenericArrayType) type).getGenericComponentType() : raw.getComponentType();
            List<?> items = tree instanceof List ? (List<?>) tree : Collections.singletonList(tree);
            Object array = Array.newInstance(raw.getComponentType(), items.size());
            for (int i = 0; i < items.size(); i++) {
                Array.set(array, i, read(items.get(i), component, depth + 1));
            }
            return array;
        }
        if (Collection.class.isAssignableFrom(raw) || raw == Iterable.class) {
            if ("".equals(tree)) {
                return null;
            }
            Collection<Object> out = (Collection<Object>) newCollection(raw);
            Type element = Types.elementType(type, raw);
            List<?> items = tree instanceof List ? (List<?>) tree : Collections.singletonList(tree);
            for (Object item : items) {
                out.add(read(item, element, depth + 1));
            }
            return out;
        }
        if (Map.class.isAssignableFrom(raw)) {
            if ("".equals(tree) || (tree instanceof List && ((List<?>) tree).isEmpty())) {
                return null;
            }
            if (!(tree instanceof Map)) {
                throw mismatch(raw, tree);
            }
            Type keyType = Types.mapTypeArg(type, raw, 0);
            Type valueType = Types.mapTypeArg(type, raw, 1);
            Map<Object, Object> out;
            if (EnumMap.class.isAssignableFrom(raw)) {
                out = new EnumMap(Types.rawClass(keyType));
            } else {
                out = (Map<Object, Object>) newMap(raw);
            }
            for (Map.Entry<String, Object> e : ((Map<String, Object>) tree).entrySet()) {
                out.put(key(e.getKey(), keyType), read(e.getValue(), valueType, depth + 1));
            }
            return out;
        }
        if (tree instanceof Json.Num) {
            Object time = timeFromNumber(raw, (Json.Num) tree);
            if (time != NOT_FOUND) {
                return time;
            }
        }
        if (raw == LocalDate.class && tree instanceof List && ((List<?>) tree).size() == 3) {
            List<?> p = (List<?>) tree;
            return LocalDate.of(((Number) p.get(0)).intValue(), ((Number) p.get(1)).intValue(),
                    ((Number) p.get(2)).intValue());
        }
        if (tree instanceof String) {
            if (((String) tree).isEmpty()) {
                return null;
            }
            Object fromText = fromString(raw, (String) tree);
            if (fromText != NOT_FOUND) {
                return fromText;
            }
        }
        if (tree instanceof List) {
            List<?> list = (List<?>) tree;
            if (list.isEmpty()) {
                return null;
            }
            if (list.size() == 1) {
                return read(list.get(0), type, depth + 1);
            }
        }
        if (!(tree instanceof Map)) {
            throw mismatch(raw, tree);
        }
        if (raw.isRecord()) {
            return record(raw, (Map<String, Object>) tree, type, depth);
        }
        return bean(raw, (Map<String, Object>) tree, type, depth);
    }

    private static final Object NOT_FOUND = new Object();

    private static BindException mismatch(Class<?> raw, Object tree) {
        String what = tree instanceof Map ? "Object value" : tree instanceof List ? "Array value"
                : tree instanceof String ? "String value" : tree instanceof Boolean ? "Boolean value"
                : "Number value";
        return new BindException("Cannot deserialize value of type `" + raw.getName() + "` from " + what);
    }

    private static Object nullFor(Class<?> raw) {
        if (raw == Optional.class) {
            return Optional.empty();
        }
        if (!raw.isPrimitive()) {
            return null;
        }
        if (raw == boolean.class) {
            return Boolean.FALSE;
        }
        if (raw == char.class) {
            return '\0';
        }
        return scalar(new Json.Num("0", true), raw);
    }

    private static boolean isScalar(Class<?> raw) {
        return raw == String.class || raw == CharSequence.class || Number.class.isAssignableFrom(raw)
                || raw == Boolean.class || raw == Character.class || raw.isEnum();
    }

    private static Object scalar(Object tree, Class<?> raw) {
        if (raw == String.class || raw == CharSequence.class) {
            if (tree instanceof Map || tree instanceof List) {
                throw mismatch(raw, tree);
            }
            return tree.toString();
        }
        if (raw.isEnum()) {
            return enumValue(raw, tree);
        }
        if (raw == boolean.class || raw == Boolean.class) {
            if (tree instanceof Boolean) {
                return tree;
            }
            if (tree instanceof Json.Num && ((Json.Num) tree).integral) {
                return ((Json.Num) tree).bigInteger().signum() != 0;
            }
            if (tree instanceof String) {
                String s = ((String) tree).trim();
                if (s.equalsIgnoreCase("true")) {
                    return Boolean.TRUE;
                }
                if (s.equalsIgnoreCase("false")) {
                    return Boolean.FALSE;
                }
                if (s.isEmpty() && raw == Boolean.class) {
                    return null;
                }
            }
            throw mismatch(raw, tree);
        }
        if (raw == char.class || raw == Character.class) {
            if (tree instanceof String && ((String) tree).length() == 1) {
                return ((String) tree).charAt(0);
            }
            if (tree instanceof Json.Num && ((Json.Num) tree).integral) {
                return (char) ((Json.Num) tree).intValue();
            }
            throw mismatch(raw, tree);
        }
        Json.Num num;
        if (tree instanceof Json.Num) {
            num = (Json.Num) tree;
        } else if (tree instanceof String) {
            String s = ((String) tree).trim();
            if (s.isEmpty()) {
                return raw.isPrimitive() ? nullFor(raw) : null;
            }
            try {
                num = (Json.Num) Json.parse(s);
            } catch (RuntimeException e) {
                throw new BindException("Cannot deserialize value of type `" + raw.getName()
                        + "` from String \"" + s + "\": not a valid number");
            }
        } else {
            throw mismatch(raw, tree);
        }
        try {
            if (raw == int.class || raw == Integer.class) {
                return num.integral ? Integer.valueOf(exact(num, Integer.MIN_VALUE, Integer.MAX_VALUE, raw))
                        : Integer.valueOf((int) num.doubleValue());
            }
            if (raw == long.class || raw == Long.class) {
                return num.integral ? Long.valueOf(num.bigInteger().longValueExact()) : Long.valueOf((long) num.doubleValue());
            }
            if (raw == short.class || raw == Short.class) {
                return Short.valueOf((short) exact(num, Short.MIN_VALUE, Short.MAX_VALUE, raw));
            }
            if (raw == byte.class || raw == Byte.class) {
                return Byte.valueOf((byte) exact(num, Byte.MIN_VALUE, 255, raw));
            }
            if (raw == double.class || raw == Double.class) {
                return num.doubleValue();
            }
            if (raw == float.class || raw == Float.class) {
                return num.floatValue();
            }
            if (raw == BigDecimal.class) {
                return num.bigDecimal();
            }
            if (raw == BigInteger.class) {
                return num.bigInteger();
            }
            if (raw == Number.class) {
                return num.natural();
            }
            if (raw == java.util.concurrent.atomic.AtomicInteger.class) {
                return new java.util.concurrent.atomic.AtomicInteger(num.intValue());
            }
            if (raw == java.util.concurrent.atomic.AtomicLong.class) {
                return new java.util.concurrent.atomic.AtomicLong(num.longValue());
            }
        } catch (ArithmeticException | NumberFormatException e) {
            throw new BindException("Numeric value (" + num.text + ") out of range of " + raw.getSimpleName());
        }
        throw mismatch(raw, tree);
    }

    private static int exact(Json.Num num, int min, int max, Class<?> raw) {
        BigInteger v = num.bigInteger();
        if (v.compareTo(BigInteger.valueOf(min)) < 0 || v.compareTo(BigInteger.valueOf(max)) > 0) {
            throw new BindException("Numeric value (" + num.text + ") out of range of " + raw.getSimpleName());
        }
        return v.intValue();
    }

    @SuppressWarnings({"unchecked", "rawtypes"})
    private static Object enumValue(Class<?> raw, Object tree) {
        Object[] constants = raw.getEnumConstants();
        if (tree instanceof Json.Num && ((Json.Num) tree).integral) {
            int i = ((Json.Num) tree).intValue();
            if (i >= 0 && i < constants.length) {
                return constants[i];
            }
            return null;
        }
        if (tree instanceof String) {
            for (Object c : constants) {
                if (((Enum) c).name().equals(tree)) {
                    return c;
                }
            }
            return null; // READ_UNKNOWN_ENUM_VALUES_AS_NULL
        }
        throw mismatch(raw, tree);
    }

    private static Collection<?> newCollection(Class<?> raw) {
        if (!raw.isInterface() && !Modifier.isAbstract(raw.getModifiers())) {
            try {
                return (Collection<?>) raw.getDeclaredConstructor().newInstance();
            } catch (ReflectiveOperationException e) {
                throw new BindException("Cannot construct instance of `" + raw.getName() + "`", e);
            }
        }
        if (SortedSet.class.isAssignableFrom(raw)) {
            return new TreeSet<>();
        }
        if (Set.class.isAssignableFrom(raw)) {
            return new HashSet<>();
        }
        if (Queue.class.isAssignableFrom(raw) && !List.class.isAssignableFrom(raw)) {
            return new ArrayDeque<>();
        }
        return new ArrayList<>();
    }

    private static Map<?, ?> newMap(Class<?> raw) {
        if (!raw.isInterface() && !Modifier.isAbstract(raw.getModifiers())) {
            try {
                return (Map<?, ?>) raw.getDeclaredConstructor().newInstance();
            } catch (ReflectiveOperationException e) {
                throw new BindException("Cannot construct instance of `" + raw.getName() + "`", e);
            }
        }
        if (SortedMap.class.isAssignableFrom(raw)) {
            return new TreeMap<>();
        }
        return new LinkedHashMap<>();
    }

    /** The element type of a collection type, looking through its supertypes. */
    private Object key(String text, Type keyType) {
        Class<?> raw = Types.rawClass(keyType);
        if (raw == String.class || raw == Object.class || raw == CharSequence.class) {
            return text;
        }
        if (raw.isEnum()) {
            return enumValue(raw, text);
        }
        return read(text, keyType);
    }

    /** A value of ``raw`` made from a JSON string: java.time, UUID, URI … and any class
     * with a static parse/valueOf/fromString(String) (Joda's DateTime.parse, as AWS's
     * runtime uses it) or a String constructor. */
    private Object fromString(Class<?> raw, String s) {
        try {
            if (raw == Date.class) {
                return Date.from(instant(s));
            }
            if (raw == Calendar.class) {
                Calendar c = Calendar.getInstance(TimeZone.getTimeZone("UTC"));
                c.setTime(Date.from(instant(s)));
                return c;
            }
            if (raw == Instant.class) {
                return instant(s);
            }
            if (raw == UUID.class) {
                return UUID.fromString(s);
            }
            if (raw == URI.class) {
                return URI.create(s);
            }
            if (raw == URL.class) {
                return new URL(s);
            }
            if (raw == Path.class) {
                return Paths.get(s);
            }
            if (raw == Locale.class) {
                return Locale.forLanguageTag(s.replace('_', '-'));
            }
            if (raw == TimeZone.class) {
                return TimeZone.getTimeZone(s);
            }
            if (raw == Duration.class) {
                return Duration.parse(s);
            }
            for (String name : new String[] {"parse", "valueOf", "fromString", "of"}) {
                for (Class<?> param : new Class<?>[] {String.class, CharSequence.class}) {
                    try {
                        Method m = raw.getMethod(name, param);
                        if (Modifier.isStatic(m.getModifiers()) && raw.isAssignableFrom(m.getReturnType())) {
                            return m.invoke(null, s);
                        }
                    } catch (NoSuchMethodException e) {
                        // try the next shape
                    }
                }
            }
            try {
                Constructor<?> c = raw.getConstructor(String.class);
                return c.newInstance(s);
            } catch (NoSuchMethodException e) {
                return NOT_FOUND;
            }
        } catch (InvocationTargetException e) {
            throw new BindException("Cannot deserialize value of type `" + raw.getName()
                    + "` from String \"" + s + "\"", e.getCause());
        } catch (ReflectiveOperationException | RuntimeException | java.net.MalformedURLException e) {
            if (e instanceof BindException) {
                throw (BindException) e;
            }
            throw new BindException("Cannot deserialize value of type `" + raw.getName()
                    + "` from String \"" + s + "\"", e);
        }
    }

    private static Instant instant(String s) {
        try {
            return Instant.parse(s);
        } catch (RuntimeException e) {
            try {
                return OffsetDateTime.parse(s).toInstant();
            } catch (RuntimeException e2) {
                try {
                    return LocalDateTime.parse(s).toInstant(ZoneOffset.UTC);
                } catch (RuntimeException e3) {
                    try {
                        return LocalDate.parse(s).atStartOfDay().toInstant(ZoneOffset.UTC);
                    } catch (RuntimeException e4) {
                        return Instant.ofEpochMilli(Long.parseLong(s));
                    }
                }
            }
        }
    }

    private Object timeFromNumber(Class<?> raw, Json.Num num) {
        if (raw == Date.class) {
            if (events) {
                double seconds = num.doubleValue();
                return seconds == 0.0 ? null : new Date((long) (seconds * 1000.0));
            }
            return new Date(num.longValue());
        }
        if (raw == Calendar.class) {
            Calendar c = Calendar.getInstance(TimeZone.getTimeZone("UTC"));
            c.setTimeInMillis(num.longValue());
            return c;
        }
        BigDecimal seconds = num.bigDecimal();
        long whole = seconds.setScale(0, java.math.RoundingMode.FLOOR).longValueExact();
        int nanos = seconds.subtract(BigDecimal.valueOf(whole)).movePointRight(9).intValue();
        if (raw == Instant.class) {
            return Instant.ofEpochSecond(whole, nanos);
        }
        if (raw == OffsetDateTime.class) {
            return OffsetDateTime.ofInstant(Instant.ofEpochSecond(whole, nanos), ZoneOffset.UTC);
        }
        if (raw == ZonedDateTime.class) {
            return ZonedDateTime.ofInstant(Instant.ofEpochSecond(whole, nanos), ZoneOffset.UTC);
        }
        if (raw == Duration.class) {
            return Duration.ofSeconds(whole, nanos);
        }
        return NOT_FOUND;
    }

    private Object bean(Class<?> raw, Map<String, Object> tree, Type type, int depth) {
        if (raw.isInterface() || Modifier.isAbstract(raw.getModifiers())) {
            throw new BindException("Cannot construct instance of `" + raw.getName()
                    + "` (no Creators, like default constructor, exist): abstract types either need"
                    + " to be mapped to concrete types, have custom deserializer, or contain"
                    + " additional type information");
        }
        Beans.ClassInfo info = beans.info(raw);
        if (info.constructor == null) {
            if (raw.getEnclosingClass() != null && !Modifier.isStatic(raw.getModifiers())) {
                throw new BindException("Cannot construct instance of `" + raw.getName()
                        + "`: non-static inner classes like this can only by instantiated using"
                        + " default, no-argument constructor");
            }
            throw new BindException("Cannot construct instance of `" + raw.getName()
                    + "` (no Creators, like default constructor, exist): cannot deserialize from"
                    + " Object value (no delegate- or property-based Creator)");
        }
        Object target;
        try {
            target = info.constructor.newInstance();
        } catch (InvocationTargetException e) {
            throw new BindException("Cannot construct instance of `" + raw.getName() + "`", e.getCause());
        } catch (ReflectiveOperationException e) {
            throw new BindException("Cannot construct instance of `" + raw.getName() + "`", e);
        }
        Map<String, Type> bound = Types.bindings(type);
        for (Map.Entry<String, Object> e : tree.entrySet()) {
            Beans.Setter setter = info.setters.get(e.getKey());
            if (setter == null) {
                continue; // FAIL_ON_UNKNOWN_PROPERTIES is off
            }
            Object value = read(e.getValue(), Types.resolve(setter.type, bound, raw), depth + 1);
            try {
                setter.set(target, value);
            } catch (InvocationTargetException ex) {
                throw new BindException("Problem deserializing property '" + e.getKey() + "' (of "
                        + raw.getName() + ")", ex.getCause());
            } catch (Exception ex) {
                throw new BindException("Problem deserializing property '" + e.getKey() + "' (of "
                        + raw.getName() + ")", ex);
            }
        }
        return target;
    }

    private Object record(Class<?> raw, Map<String, Object> tree, Type type, int depth) {
        RecordComponent[] components = raw.getRecordComponents();
        Class<?>[] types = new Class<?>[components.length];
        Object[] args = new Object[components.length];
        Map<String, Type> bound = Types.bindings(type);
        for (int i = 0; i < components.length; i++) {
            types[i] = components[i].getType();
            Object node = tree.get(beans.jsonName(raw, components[i].getName()));
            args[i] = read(node, Types.resolve(components[i].getGenericType(), bound, raw), depth + 1);
        }
        try {
            Constructor<?> c = raw.getDeclaredConstructor(types);
            Beans.open(c);
            return c.newInstance(args);
        } catch (InvocationTargetException e) {
            throw new BindException("Cannot construct instance of `" + raw.getName() + "`", e.getCause());
        } catch (ReflectiveOperationException e) {
            throw new BindException("Cannot construct instance of `" + raw.getName() + "`", e);
        }
    }

    // --- writing: a Java value to JSON -----------------------------------------------

    /** JSON text of a handler's result. */
    public String write(Object value) {
        StringBuilder sb = new StringBuilder();
        write(new Json.Writer(sb), value, new IdentityHashMap<>(), 0);
        return sb.toString();
    }

    private void write(Json.Writer w, Object v, IdentityHashMap<Object, Boolean> path, int depth) {
        if (depth > 1000) {
            throw new BindException("Infinite recursion (StackOverflowError)");
        }
        if (v == null) {
            w.nul();
            return;
        }
        if (v instanceof String || v instanceof Character || v instanceof CharSequence) {
            w.string(v.toString());
            return;
        }
        if (v instanceof Boolean) {
            w.bool((Boolean) v);
            return;
        }
        if (v instanceof Number) {
            w.number((Number) v);
            return;
        }
        if (v instanceof Enum) {
            w.string(((Enum<?>) v).name());
            return;
        }
        if (v instanceof byte[]) {
            w.string(Base64.getEncoder().encodeToString((byte[]) v));
            return;
        }
        if (v instanceof char[]) {
            w.string(new String((char[]) v));
            return;
        }
        if (v instanceof Optional) {
            write(w, ((Optional<?>) v).orElse(null), path, depth + 1);
            return;
        }
        if (v instanceof OptionalInt) {
            OptionalInt o = (OptionalInt) v;
            if (o.isPresent()) w.raw(Integer.toString(o.getAsInt())); else w.nul();
            return;
        }
        if (v instanceof OptionalLong) {
            OptionalLong o = (OptionalLong) v;
            if (o.isPresent()) w.raw(Long.toString(o.getAsLong())); else w.nul();
            return;
        }
        if (v instanceof OptionalDouble) {
            OptionalDouble o = (OptionalDouble) v;
            if (o.isPresent()) w.number(o.getAsDouble()); else w.nul();
            return;
        }
        if (v instanceof Date) {
            long millis = ((Date) v).getTime();
            if (events) {
                w.number(millis / 1000.0);
            } else {
                w.raw(Long.toString(millis));
            }
            return;
        }
        if (v instanceof Calendar) {
            w.raw(Long.toString(((Calendar) v).getTimeInMillis()));
            return;
        }
        if (v instanceof TemporalAccessor || v instanceof Duration) {
            time(w, v);
            return;
        }
        if (isStringLike(v)) {
            w.string(v instanceof TimeZone ? ((TimeZone) v).getID()
                    : v instanceof Class ? ((Class<?>) v).getName() : v.toString());
            return;
        }
        if (path.containsKey(v)) {
            throw new BindException("Direct self-reference leading to cycle (through reference chain: "
                    + v.getClass().getName() + ")");
        }
        path.put(v, Boolean.TRUE);
        try {
            if (v instanceof Map) {
                w.out.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
                    if (!first) {
                        w.out.append(',');
                    }
                    first = false;
                    Object k = e.getKey();
                    w.string(k instanceof Enum ? ((Enum<?>) k).name() : String.valueOf(k));
                    w.out.append(':');
                    write(w, e.getValue(), path, depth + 1);
                }
                w.out.append('}');
            } else if (v instanceof Iterable || v instanceof Iterator || v.getClass().isArray()) {
                Iterator<?> it;
                if (v instanceof Iterable) {
                    it = ((Iterable<?>) v).iterator();
                } else if (v instanceof Iterator) {
                    it = (Iterator<?>) v;
                } else {
                    int n = Array.getLength(v);
                    List<Object> items = new ArrayList<>(n);
                    for (int i = 0; i < n; i++) {
                        items.add(Array.get(v, i));
                    }
                    it = items.iterator();
                }
                w.out.append('[');
                boolean first = true;
                while (it.hasNext()) {
                    if (!first) {
                        w.out.append(',');
                    }
                    first = false;
                    write(w, it.next(), path, depth + 1);
                }
                w.out.append(']');
            } else if (v.getClass().isRecord()) {
                w.out.append('{');
                boolean first = true;
                for (RecordComponent c : v.getClass().getRecordComponents()) {
                    Object value;
                    try {
                        Method m = c.getAccessor();
                        Beans.open(m);
                        value = m.invoke(v);
                    } catch (InvocationTargetException e) {
                        throw new BindException("Problem serializing " + c.getName(), e.getCause());
                    } catch (ReflectiveOperationException e) {
                        throw new BindException("Problem serializing " + c.getName(), e);
                    }
                    if (value == null) {
                        continue;
                    }
                    if (!first) {
                        w.out.append(',');
                    }
                    first = false;
                    w.string(beans.jsonName(v.getClass(), c.getName()));
                    w.out.append(':');
                    write(w, value, path, depth + 1);
                }
                w.out.append('}');
            } else {
                bean(w, v, path, depth);
            }
        } finally {
            path.remove(v);
        }
    }

    private void bean(Json.Writer w, Object v, IdentityHashMap<Object, Boolean> path, int depth) {
        Beans.ClassInfo info = beans.info(v.getClass());
        w.out.append('{');
        boolean first = true;
        for (Beans.Getter g : info.getters) {
            Object value;
            try {
                value = g.get(v);
            } catch (InvocationTargetException e) {
                throw new BindException("Problem serializing property '" + g.name + "'", e.getCause());
            } catch (Exception e) {
                throw new BindException("Problem serializing property '" + g.name + "'", e);
            }
            if (value == null) {
                continue; // Include.NON_NULL
            }
            if (value == v) {
                throw new BindException("Direct self-reference leading to cycle (through reference chain: "
                        + v.getClass().getName() + "[\"" + g.name + "\"])");
            }
            if (!first) {
                w.out.append(',');
            }
            first = false;
            w.string(g.name);
            w.out.append(':');
            write(w, value, path, depth + 1);
        }
        w.out.append('}');
    }

    private static boolean isStringLike(Object v) {
        return v instanceof UUID || v instanceof URI || v instanceof URL || v instanceof Path
                || v instanceof java.io.File || v instanceof Locale || v instanceof TimeZone
                || v instanceof java.time.ZoneId || v instanceof Class || v instanceof java.util.regex.Pattern
                || v instanceof java.util.Currency || v instanceof java.nio.charset.Charset
                || v instanceof StringBuilder || v.getClass().getName().startsWith("org.joda.time.");
    }

    /** java.time values as Jackson's JavaTimeModule writes them (timestamps on). */
    private static void time(Json.Writer w, Object v) {
        if (v instanceof Instant) {
            Instant i = (Instant) v;
            w.raw(seconds(i.getEpochSecond(), i.getNano()));
        } else if (v instanceof OffsetDateTime) {
            Instant i = ((OffsetDateTime) v).toInstant();
            w.raw(seconds(i.getEpochSecond(), i.getNano()));
        } else if (v instanceof ZonedDateTime) {
            Instant i = ((ZonedDateTime) v).toInstant();
            w.raw(seconds(i.getEpochSecond(), i.getNano()));
        } else if (v instanceof Duration) {
            Duration d = (Duration) v;
            w.raw(seconds(d.getSeconds(), d.getNano()));
        } else if (v instanceof LocalDate) {
            LocalDate d = (LocalDate) v;
            w.raw("[" + d.getYear() + "," + d.getMonthValue() + "," + d.getDayOfMonth() + "]");
        } else if (v instanceof LocalTime) {
            w.raw("[" + timeParts((LocalTime) v) + "]");
        } else if (v instanceof LocalDateTime) {
            LocalDateTime d = (LocalDateTime) v;
            w.raw("[" + d.getYear() + "," + d.getMonthValue() + "," + d.getDayOfMonth() + ","
                    + timeParts(d.toLocalTime()) + "]");
        } else if (v instanceof java.time.Year) {
            w.raw(Integer.toString(((java.time.Year) v).getValue()));
        } else if (v instanceof java.time.YearMonth) {
            java.time.YearMonth ym = (java.time.YearMonth) v;
            w.raw("[" + ym.getYear() + "," + ym.getMonthValue() + "]");
        } else if (v instanceof java.time.DayOfWeek || v instanceof java.time.Month) {
            w.string(((Enum<?>) v).name());
        } else {
            w.string(v.toString());
        }
    }

    private static String timeParts(LocalTime t) {
        String s = t.getHour() + "," + t.getMinute();
        if (t.getSecond() != 0 || t.getNano() != 0) {
            s += "," + t.getSecond();
            if (t.getNano() != 0) {
                s += "," + t.getNano();
            }
        }
        return s;
    }

    private static String seconds(long seconds, int nanos) {
        if (nanos == 0) {
            return seconds + ".0";
        }
        StringBuilder n = new StringBuilder(Integer.toString(nanos));
        while (n.length() < 9) {
            n.insert(0, '0');
        }
        if (seconds < 0 && nanos > 0) {
            return BigDecimal.valueOf(seconds).add(new BigDecimal("0." + n)).toPlainString();
        }
        return seconds + "." + n;
    }
}
