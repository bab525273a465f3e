package firebox.lambda;

import java.lang.reflect.Array;
import java.lang.reflect.GenericArrayType;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.lang.reflect.TypeVariable;
import java.lang.reflect.WildcardType;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** Generic types, resolved as far as reflection allows: the raw class of a type, the type
 * arguments a class gives its superclasses and interfaces, a property's type with the
 * enclosing type's variables filled in. */
final class Types {
    private Types() {}

    static Class<?> rawClass(Type t) {
        if (t instanceof Class) {
            return (Class<?>) t;
        }
        if (t instanceof ParameterizedType) {
            return rawClass(((ParameterizedType) t).getRawType());
        }
        if (t instanceof GenericArrayType) {
            Class<?> c = rawClass(((GenericArrayType) t).getGenericComponentType());
            return c == null ? Object[].class : Array.newInstance(c, 0).getClass();
        }
        if (t instanceof WildcardType) {
            Type[] upper = ((WildcardType) t).getUpperBounds();
            return upper.length > 0 ? rawClass(upper[0]) : Object.class;
        }
        if (t instanceof TypeVariable) {
            Type[] bounds = ((TypeVariable<?>) t).getBounds();
            return bounds.length > 0 ? rawClass(bounds[0]) : Object.class;
        }
        return Object.class;
    }

    static Type typeArg(Type t, int i) {
        if (t instanceof ParameterizedType) {
            Type[] args = ((ParameterizedType) t).getActualTypeArguments();
            if (i < args.length) {
                return args[i];
            }
        }
        return Object.class;
    }

    /** Type variables of a class (and its superclasses) bound to what ``type`` gives them. */
    static Map<String, Type> bindings(Type type) {
        Map<String, Type> out = new HashMap<>();
        Type current = type;
        while (current != null) {
            Class<?> raw = rawClass(current);
            if (raw == null || raw == Object.class) {
                break;
            }
            if (current instanceof ParameterizedType) {
                TypeVariable<?>[] vars = raw.getTypeParameters();
                Type[] args = ((ParameterizedType) current).getActualTypeArguments();
                for (int i = 0; i < vars.length && i < args.length; i++) {
                    out.put(raw.getName() + "#" + vars[i].getName(), resolve(args[i], out, null));
                }
            }
            current = raw.getGenericSuperclass();
        }
        return out;
    }

    static Type resolve(Type t, Map<String, Type> bound, Class<?> declaring) {
        if (t instanceof TypeVariable) {
            TypeVariable<?> v = (TypeVariable<?>) t;
            Object decl = v.getGenericDeclaration();
            if (decl instanceof Class) {
                Type b = bound.get(((Class<?>) decl).getName() + "#" + v.getName());
                if (b != null) {
                    return b;
                }
            }
            Type[] bounds = v.getBounds();
            return bounds.length > 0 ? bounds[0] : Object.class;
        }
        if (t instanceof ParameterizedType && !bound.isEmpty()) {
            ParameterizedType p = (ParameterizedType) t;
            Type[] args = p.getActualTypeArguments().clone();
            boolean changed = false;
            for (int i = 0; i < args.length; i++) {
                Type r = resolve(args[i], bound, declaring);
                changed |= r != args[i];
                args[i] = r;
            }
            if (changed) {
                return new Resolved(rawClass(p), args, p.getOwnerType());
            }
        }
        return t;
    }

    private static final class Resolved implements ParameterizedType {
        private final Class<?> raw;
        private final Type[] args;
        private final Type owner;

        Resolved(Class<?> raw, Type[] args, Type owner) {
            this.raw = raw;
            this.args = args;
            this.owner = owner;
        }

        public Type[] getActualTypeArguments() {
            return args.clone();
        }

        public Type getRawType() {
            return raw;
        }

        public Type getOwnerType() {
            return owner;
        }
    }


    static Type elementType(Type type, Class<?> raw) {
        Type found = supertypeArg(type, Collection.class, 0);
        if (found == null) {
            found = supertypeArg(type, Iterable.class, 0);
        }
        return found == null ? Object.class : found;
    }

    static Type mapTypeArg(Type type, Class<?> raw, int i) {
        Type found = supertypeArg(type, Map.class, i);
        return found == null ? (i == 0 ? String.class : Object.class) : found;
    }

    /** The i-th type argument ``type`` gives to the generic interface or class ``target``. */
    static Type supertypeArg(Type type, Class<?> target, int i) {
        Class<?> raw = rawClass(type);
        if (raw == target) {
            return type instanceof ParameterizedType ? typeArg(type, i) : null;
        }
        Map<String, Type> bound = bindings(type);
        List<Type> todo = new ArrayList<>();
        todo.add(type);
        Set<Class<?>> seen = new HashSet<>();
        while (!todo.isEmpty()) {
            Type t = todo.remove(0);
            Class<?> c = rawClass(t);
            if (c == null || !seen.add(c)) {
                continue;
            }
            if (t instanceof ParameterizedType) {
                TypeVariable<?>[] vars = c.getTypeParameters();
                Type[] args = ((ParameterizedType) t).getActualTypeArguments();
                for (int k = 0; k < vars.length && k < args.length; k++) {
                    bound.putIfAbsent(c.getName() + "#" + vars[k].getName(), resolve(args[k], bound, c));
                }
            }
            if (c == target) {
                if (t instanceof ParameterizedType) {
                    return resolve(typeArg(t, i), bound, c);
                }
                return null;
            }
            for (Type s : c.getGenericInterfaces()) {
                todo.add(s);
            }
            if (c.getGenericSuperclass() != null) {
                todo.add(c.getGenericSuperclass());
            }
        }
        return null;
    }

}
