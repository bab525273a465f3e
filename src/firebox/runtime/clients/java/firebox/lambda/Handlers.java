package firebox.lambda;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.CustomPojoSerializer;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import com.amazonaws.services.lambda.runtime.RequestStreamHandler;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.reflect.Constructor;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.lang.reflect.TypeVariable;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.ServiceLoader;

/**
 * Finds the handler a _HANDLER string names and wraps it as a function from payload bytes to
 * response bytes, with AWS's Java runtime's rules: "package.Class" is a RequestHandler or a
 * RequestStreamHandler; "package.Class::method" is any public method of the shapes AWS
 * documents ((I), (I, Context), (InputStream, OutputStream[, Context]), (Context), () …),
 * overloads ranked as AWS ranks them. Static initialisers and constructors run here, during
 * Init.
 */
final class Handlers {
    private static final byte[] JSON_NULL = "null".getBytes(StandardCharsets.US_ASCII);

    /** One invocation: payload in, response out. */
    interface Invoker {
        byte[] call(byte[] payload, Context context) throws Throwable;
    }

    private Handlers() {}

    static String className(String handler) {
        int colons = handler.lastIndexOf("::");
        return colons < 0 ? handler : handler.substring(0, colons);
    }

    /** The invoker for ``handler``; a fatal UserFault if Init fails. Faults that AWS reports
     * per invoke come back as an invoker that throws them. */
    static Invoker load(String handler, ClassLoader loader) {
        int colons = handler.lastIndexOf("::");
        String className = colons < 0 ? handler : handler.substring(0, colons);
        String methodName = colons < 0 ? null : handler.substring(colons + 2);
        if (className.isEmpty() || (methodName != null && methodName.isEmpty())) {
            return failing(UserFault.of("Invalid handler: `" + handler + "'"));
        }
        Class<?> cls;
        try {
            cls = Class.forName(className, true, loader);
        } catch (ClassNotFoundException e) {
            return failing(new UserFault("Class not found: " + className, e.getClass().getName(),
                    UserFault.trace(e), false));
        } catch (NoClassDefFoundError e) {
            return failing(UserFault.loadingClass(e, className, false));
        } catch (Throwable t) {
            throw UserFault.loadingClass(t, className, true);
        }
        Invoker invoker;
        if (methodName == null) {
            invoker = loadClassHandler(cls, loader);
        } else {
            invoker = loadMethodHandler(cls, methodName, loader);
        }
        return invoker;
    }

    private static Invoker failing(final UserFault fault) {
        if (fault.fatal) {
            throw fault;
        }
        return new Invoker() {
            public byte[] call(byte[] payload, Context context) {
                throw fault;
            }
        };
    }

    private static Invoker loadClassHandler(Class<?> cls, ClassLoader loader) {
        if (RequestStreamHandler.class.isAssignableFrom(cls)) {
            RequestStreamHandler h = (RequestStreamHandler) instantiate(cls);
            if (h == null) {
                return failing(noConstructor(cls));
            }
            return streams(h);
        }
        if (RequestHandler.class.isAssignableFrom(cls)) {
            Type[] types = findInterfaceParameters(cls, RequestHandler.class);
            if (types == null) {
                return failing(UserFault.of("Class " + cls.getName()
                        + " does not implement RequestHandler with concrete type parameters"));
            }
            if (types.length != 2) {
                return failing(UserFault.of(
                        "Invalid class signature for RequestHandler. Expected two generic types, got " + types.length));
            }
            for (Type t : types) {
                if (t instanceof TypeVariable) {
                    boolean bounded = false;
                    for (Type b : ((TypeVariable<?>) t).getBounds()) {
                        bounded |= !Object.class.equals(b);
                    }
                    if (!bounded) {
                        return failing(UserFault.of("Class " + cls.getName()
                                + " does not implement RequestHandler with concrete type parameters: parameter "
                                + t + " has no upper bound."));
                    }
                }
            }
            @SuppressWarnings("unchecked")
            final RequestHandler<Object, Object> h = (RequestHandler<Object, Object>) instantiate(cls);
            if (h == null) {
                return failing(noConstructor(cls));
            }
            Call call = new Call() {
                public Object apply(Object input, Context context) {
                    return h.handleRequest(input, context);
                }
            };
            return pojo(call, true, types[0], types[1], loader);
        }
        return failing(UserFault.of("Class does not implement an appropriate handler interface: " + cls.getName()));
    }

    private static UserFault noConstructor(Class<?> cls) {
        String msg = cls.getEnclosingClass() != null && !Modifier.isStatic(cls.getModifiers())
                ? "Class " + cls.getName() + " cannot be instantiated because it is a non-static inner class"
                : "Class " + cls.getName() + " has no public zero-argument constructor";
        return UserFault.of(new Exception(msg), false);
    }

    /** A new instance through the public no-argument constructor; null when there is none;
     * a fatal fault when the constructor throws (an Init error, as on Lambda). */
    private static Object instantiate(Class<?> cls) {
        Constructor<?> c;
        try {
            c = cls.getConstructor();
        } catch (NoSuchMethodException e) {
            return null;
        }
        try {
            return c.newInstance();
        } catch (InvocationTargetException e) {
            Throwable cause = e.getCause() == null ? e : e.getCause();
            throw UserFault.of(UserFault.filter(cause), true);
        } catch (ReflectiveOperationException e) {
            throw UserFault.of(e, true);
        }
    }

    // --- RequestHandler type parameters, found as AWS finds them ----------------------

    /** Breadth-first through superclasses and interfaces for the type arguments ``cls``
     * gives ``iface``, type variables resolved along the way. */
    static Type[] findInterfaceParameters(Class<?> cls, Class<?> iface) {
        List<Object[]> queue = new ArrayList<>(); // {Class, Map<String, Type> bindings}
        queue.add(new Object[] {cls, new HashMap<String, Type>()});
        while (!queue.isEmpty()) {
            Object[] cur = queue.remove(0);
            Class<?> c = (Class<?>) cur[0];
            @SuppressWarnings("unchecked")
            Map<String, Type> bound = (Map<String, Type>) cur[1];
            List<Type> supers = new ArrayList<>(Arrays.asList(c.getGenericInterfaces()));
            if (c.getGenericSuperclass() != null) {
                supers.add(c.getGenericSuperclass());
            }
            for (Type s : supers) {
                if (s instanceof ParameterizedType) {
                    ParameterizedType p = (ParameterizedType) s;
                    Class<?> raw = (Class<?>) p.getRawType();
                    Type[] args = p.getActualTypeArguments().clone();
                    for (int i = 0; i < args.length; i++) {
                        if (args[i] instanceof TypeVariable) {
                            Type b = bound.get(((TypeVariable<?>) args[i]).getName());
                            if (b != null) {
                                args[i] = b;
                            }
                        }
                    }
                    if (raw == iface) {
                        return args;
                    }
                    Map<String, Type> next = new HashMap<>();
                    TypeVariable<?>[] vars = raw.getTypeParameters();
                    for (int i = 0; i < vars.length && i < args.length; i++) {
                        next.put(vars[i].getName(), args[i]);
                    }
                    if (iface.isAssignableFrom(raw)) {
                        queue.add(new Object[] {raw, next});
                    }
                } else if (s instanceof Class && iface.isAssignableFrom((Class<?>) s)) {
                    if (s == iface) {
                        return null; // the raw interface: no type arguments at all
                    }
                    queue.add(new Object[] {s, new HashMap<String, Type>()});
                }
            }
        }
        return null;
    }

    // --- method handlers --------------------------------------------------------------

    private static boolean isContext(Type t) {
        return Context.class.equals(t);
    }

    /** AWS's ranking: non-bridge first, then longer signatures, a trailing Context counting
     * as one more parameter. */
    private static final Comparator<Method> PRIORITY = new Comparator<Method>() {
        public int compare(Method l, Method r) {
            if (!l.isBridge() && r.isBridge()) {
                return -1;
            }
            if (!r.isBridge() && l.isBridge()) {
                return 1;
            }
            Class<?>[] lp = l.getParameterTypes();
            Class<?>[] rp = r.getParameterTypes();
            int ln = lp.length + (lp.length > 0 && isContext(lp[lp.length - 1]) ? 1 : 0);
            int rn = rp.length + (rp.length > 0 && isContext(rp[rp.length - 1]) ? 1 : 0);
            return -Integer.compare(ln, rn);
        }
    };

    private static Invoker loadMethodHandler(Class<?> cls, String name, ClassLoader loader) {
        Method[] all;
        try {
            all = cls.getMethods();
        } catch (NoClassDefFoundError e) {
            return failing(new UserFault("Error loading method " + name + " on class " + cls.getName(),
                    e.getClass().getName(), UserFault.trace(e), false));
        }
        List<Method> candidates = new ArrayList<>();
        for (Method m : all) {
            if (m.getName().equals(name)) {
                candidates.add(m);
            }
        }
        candidates.sort(PRIORITY);
        for (Method m : candidates) {
            Invoker inv = fromOverload(cls, m, loader);
            if (inv != null) {
                return inv;
            }
        }
        return failing(UserFault.of("No public method named " + name
                + " with appropriate method signature found on class " + cls.getName()));
    }

    private static Invoker fromOverload(Class<?> cls, Method m, ClassLoader loader) {
        Type r = m.getGenericReturnType();
        Type[] p = m.getGenericParameterTypes();
        switch (p.length) {
            case 0:
                return pojoMethod(cls, m, null, r, false, loader);
            case 1:
                if (InputStream.class.equals(p[0])) {
                    return streamMethod(cls, m, true, false, false);
                }
                if (OutputStream.class.equals(p[0])) {
                    return streamMethod(cls, m, false, true, false);
                }
                if (isContext(p[0])) {
                    return pojoMethod(cls, m, null, r, true, loader);
                }
                return pojoMethod(cls, m, p[0], r, false, loader);
            case 2:
                if (OutputStream.class.equals(p[0])) {
                    return isContext(p[1]) ? streamMethod(cls, m, false, true, true) : null;
                }
                if (isContext(p[0])) {
                    return null;
                }
                if (InputStream.class.equals(p[0])) {
                    if (OutputStream.class.equals(p[1])) {
                        return streamMethod(cls, m, true, true, false);
                    }
                    return isContext(p[1]) ? streamMethod(cls, m, true, false, true) : null;
                }
                return isContext(p[1]) ? pojoMethod(cls, m, p[0], r, true, loader) : null;
            case 3:
                if (InputStream.class.equals(p[0]) && OutputStream.class.equals(p[1]) && isContext(p[2])) {
                    return streamMethod(cls, m, true, true, true);
                }
                return null;
            default:
                return null;
        }
    }

    private static Object receiver(Class<?> cls, Method m) {
        if (Modifier.isStatic(m.getModifiers())) {
            return null;
        }
        Object instance = instantiate(cls);
        if (instance == null) {
            throw noConstructor(cls);
        }
        return instance;
    }

    private static Object invoke(Method m, Object target, Object[] args) throws Throwable {
        try {
            return m.invoke(target, args);
        } catch (InvocationTargetException e) {
            throw UserFault.filter(e.getCause() != null ? e.getCause() : e);
        }
    }

    private interface Call {
        Object apply(Object input, Context context) throws Throwable;
    }

    private static Invoker pojoMethod(Class<?> cls, final Method m, final Type input, Type output,
                                      final boolean withContext, ClassLoader loader) {
        final Object target;
        try {
            open(m);
            target = receiver(cls, m);
        } catch (UserFault f) {
            return failing(f);
        }
        final int n = (input != null ? 1 : 0) + (withContext ? 1 : 0);
        Call call = new Call() {
            public Object apply(Object in, Context ctx) throws Throwable {
                Object[] args = new Object[n];
                int i = 0;
                if (input != null) {
                    args[i++] = in;
                }
                if (withContext) {
                    args[i] = ctx;
                }
                return invoke(m, target, args);
            }
        };
        return pojo(call, input != null, input, output, loader);
    }

    private static Invoker streamMethod(Class<?> cls, final Method m, final boolean in, final boolean out,
                                        final boolean ctx) {
        final Object target;
        try {
            open(m);
            target = receiver(cls, m);
        } catch (UserFault f) {
            return failing(f);
        }
        final int n = (in ? 1 : 0) + (out ? 1 : 0) + (ctx ? 1 : 0);
        return new Invoker() {
            public byte[] call(byte[] payload, Context context) throws Throwable {
                ByteArrayOutputStream output = new ByteArrayOutputStream(1024);
                Object[] args = new Object[n];
                int i = 0;
                if (in) {
                    args[i++] = new ByteArrayInputStream(payload);
                }
                if (out) {
                    args[i++] = output;
                }
                if (ctx) {
                    args[i] = context;
                }
                invoke(m, target, args);
                return out ? output.toByteArray() : JSON_NULL;
            }
        };
    }

    private static void open(Method m) {
        try {
            m.setAccessible(true); // a public method of a non-public class
        } catch (RuntimeException e) {
            // stays as it is
        }
    }

    private static Invoker streams(final RequestStreamHandler h) {
        return new Invoker() {
            public byte[] call(byte[] payload, Context context) throws Throwable {
                ByteArrayOutputStream output = new ByteArrayOutputStream(1024);
                h.handleRequest(new ByteArrayInputStream(payload), output, context);
                return output.toByteArray();
            }
        };
    }

    private static boolean isVoid(Type t) {
        return Void.TYPE.equals(t) || (t instanceof Class && Void.class.isAssignableFrom((Class<?>) t));
    }

    /** A POJO handler: the payload mapped to ``input``, the result from ``output``, through
     * the function's own CustomPojoSerializer when it provides one. */
    private static Invoker pojo(final Call call, final boolean hasInput, final Type input, final Type output,
                                ClassLoader loader) {
        final CustomPojoSerializer custom = customSerializer(loader);
        final boolean hasOutput = output != null && !isVoid(output);
        final Binder in = hasInput ? Binder.forType(input) : null;
        final Binder out = hasOutput ? Binder.forType(output) : null;
        return new Invoker() {
            public byte[] call(byte[] payload, Context context) throws Throwable {
                Object arg = null;
                if (hasInput) {
                    try {
                        if (custom != null) {
                            arg = custom.fromJson(new ByteArrayInputStream(payload), input);
                        } else {
                            String text = new String(payload, StandardCharsets.UTF_8);
                            arg = in.read(text.trim().isEmpty() ? null : Json.parse(text), input);
                        }
                    } catch (Throwable t) {
                        throw new RuntimeException("An error occurred during JSON parsing", UserFault.filter(t));
                    }
                }
                Object result = call.apply(arg, context);
                if (!hasOutput) {
                    return JSON_NULL;
                }
                try {
                    if (custom != null) {
                        ByteArrayOutputStream buf = new ByteArrayOutputStream();
                        custom.toJson(result, buf, output);
                        return buf.toByteArray();
                    }
                    return out.write(result).getBytes(StandardCharsets.UTF_8);
                } catch (Throwable t) {
                    throw new RuntimeException("An error occurred during JSON serialization of response", t);
                }
            }
        };
    }

    private static CustomPojoSerializer customSerializer(ClassLoader loader) {
        Iterator<CustomPojoSerializer> it = ServiceLoader.load(CustomPojoSerializer.class, loader).iterator();
        CustomPojoSerializer found = null;
        while (it.hasNext()) {
            if (found != null) {
                throw UserFault.of(new IllegalStateException(
                        "Too many serializers provided inside the META-INF/services folder, only one is allowed"),
                        true);
            }
            found = it.next();
        }
        return found;
    }
}
