package firebox.lambda;

import java.lang.reflect.AccessibleObject;
import java.lang.reflect.Constructor;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.Type;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The JSON properties of a class, as AWS's Java runtime has Jackson find them: public getters
 * (isX only for {@code boolean}), setters of any visibility and public fields, named by the
 * JavaBeans rule (getURL is "URL"), in the order Jackson writes them; and, for AWS's event
 * classes, the names AWS's runtime gives them in JSON ("Records", "eventSourceARN",
 * "detail-type", SNS in UpperCamelCase …).
 */
final class Beans {
    private static final String EVENTS = "com.amazonaws.services.lambda.runtime.events.";

    /** The event classes AWS's runtime serializes with its event rules. */
    private static final Set<String> SUPPORTED_EVENTS = new HashSet<>(Arrays.asList(
            EVENTS + "APIGatewayProxyRequestEvent", EVENTS + "APIGatewayProxyResponseEvent",
            EVENTS + "CloudFormationCustomResourceEvent", EVENTS + "CloudFrontEvent",
            EVENTS + "CloudWatchLogsEvent", EVENTS + "CodeCommitEvent", EVENTS + "CognitoEvent",
            EVENTS + "ConfigEvent", EVENTS + "ConnectEvent", EVENTS + "DynamodbEvent",
            EVENTS + "DynamodbTimeWindowEvent", EVENTS + "IoTButtonEvent", EVENTS + "KinesisEvent",
            EVENTS + "KinesisTimeWindowEvent", EVENTS + "KinesisFirehoseEvent",
            EVENTS + "LambdaDestinationEvent", EVENTS + "LexEvent", EVENTS + "ScheduledEvent",
            EVENTS + "SecretsManagerRotationEvent", EVENTS + "S3Event", EVENTS + "SNSEvent",
            EVENTS + "SQSEvent", EVENTS + "models.s3.S3EventNotification",
            "com.amazonaws.services.s3.event.S3EventNotification"));

    /** Event trees whose every name is UpperCamelCase in JSON. */
    private static final Set<String> UPPER_CAMEL = new HashSet<>(Arrays.asList(
            EVENTS + "SNSEvent", EVENTS + "ConnectEvent$Queue"));

    /** Per event class: the JavaBeans name of a property -> its name in the event's JSON. */
    private static final Map<String, Map<String, String>> RENAMES = new HashMap<>();

    private static void rename(String cls, String... pairs) {
        Map<String, String> m = RENAMES.get(cls);
        if (m == null) {
            m = new HashMap<>();
            RENAMES.put(cls, m);
        }
        for (int i = 0; i < pairs.length; i += 2) {
            m.put(pairs[i], pairs[i + 1]);
        }
    }

    static {
        for (String cls : new String[] {"CloudFrontEvent", "CodeCommitEvent", "DynamodbEvent",
                "DynamodbTimeWindowEvent", "KinesisEvent", "KinesisTimeWindowEvent", "SNSEvent",
                "SQSEvent"}) {
            rename(EVENTS + cls, "records", "Records");
        }
        rename(EVENTS + "CloudFormationCustomResourceEvent", "requestType", "RequestType",
                "serviceToken", "ServiceToken", "physicalResourceId", "PhysicalResourceId",
                "responseUrl", "ResponseURL", "stackId", "StackId", "requestId", "RequestId",
                "logicalResourceId", "LogicalResourceId", "resourceType", "ResourceType",
                "resourceProperties", "ResourceProperties", "oldResourceProperties",
                "OldResourceProperties");
        rename(EVENTS + "CloudWatchLogsEvent", "awsLogs", "awslogs");
        rename(EVENTS + "CodeCommitEvent$Record", "codeCommit", "codecommit",
                "eventSourceArn", "eventSourceARN", "userIdentityArn", "userIdentityARN");
        rename(EVENTS + "ConnectEvent", "details", "Details", "name", "Name");
        rename(EVENTS + "ConnectEvent$Details", "contactData", "ContactData",
                "parameters", "Parameters");
        rename(EVENTS + "ConnectEvent$ContactData", "attributes", "Attributes", "channel",
                "Channel", "contactId", "ContactId", "customerEndpoint", "CustomerEndpoint",
                "initialContactId", "InitialContactId", "initiationMethod", "InitiationMethod",
                "instanceArn", "InstanceARN", "previousContactId", "PreviousContactId",
                "queue", "Queue", "systemEndpoint", "SystemEndpoint");
        for (String cls : new String[] {"ConnectEvent$CustomerEndpoint", "ConnectEvent$SystemEndpoint"}) {
            rename(EVENTS + cls, "address", "Address", "type", "Type");
        }
        rename(EVENTS + "ConnectEvent$Queue", "name", "Name");
        rename(EVENTS + "DynamodbEvent$DynamodbStreamRecord", "eventSourceArn", "eventSourceARN");
        rename(EVENTS + "DynamodbTimeWindowEvent", "eventSourceArn", "eventSourceARN");
        rename(EVENTS + "KinesisTimeWindowEvent", "eventSourceArn", "eventSourceARN");
        for (String cls : new String[] {EVENTS + "models.dynamodb.StreamRecord",
                "com.amazonaws.services.dynamodbv2.model.StreamRecord"}) {
            rename(cls, "keys", "Keys", "sizeBytes", "SizeBytes", "sequenceNumber",
                    "SequenceNumber", "streamViewType", "StreamViewType", "newImage", "NewImage",
                    "oldImage", "OldImage", "approximateCreationDateTime",
                    "ApproximateCreationDateTime");
        }
        for (String cls : new String[] {EVENTS + "models.dynamodb.AttributeValue",
                "com.amazonaws.services.dynamodbv2.model.AttributeValue"}) {
            rename(cls, "s", "S", "n", "N", "b", "B", "NULL", "NULL", "BOOL", "BOOL", "SS", "SS",
                    "NS", "NS", "BS", "BS", "m", "M", "l", "L");
        }
        rename(EVENTS + "SNSEvent$SNSRecord", "SNS", "Sns", "sns", "Sns");
        rename(EVENTS + "SQSEvent$SQSMessage", "eventSourceArn", "eventSourceARN");
        rename(EVENTS + "ScheduledEvent", "detailType", "detail-type");
        rename(EVENTS + "SecretsManagerRotationEvent", "step", "Step", "secretId", "SecretId",
                "clientRequestToken", "ClientRequestToken", "rotationToken", "RotationToken");
    }


    /** Whether AWS's runtime maps this class with its event rules. */
    static boolean isEvent(String className) {
        return SUPPORTED_EVENTS.contains(className);
    }

    /** Whether this event class is named in UpperCamelCase throughout. */
    static boolean isUpperCamel(String className) {
        return UPPER_CAMEL.contains(className);
    }

    private final boolean upperCamel;
    private final Map<Class<?>, ClassInfo> infos = new ConcurrentHashMap<>();

    Beans(boolean upperCamel) {
        this.upperCamel = upperCamel;
    }

    /** JavaBeans' decapitalisation, as Jackson's USE_STD_BEAN_NAMING does it. */
    static String beanName(String suffix) {
        if (suffix.isEmpty()) {
            return suffix;
        }
        if (suffix.length() > 1 && Character.isUpperCase(suffix.charAt(0))
                && Character.isUpperCase(suffix.charAt(1))) {
            return suffix;
        }
        return Character.toLowerCase(suffix.charAt(0)) + suffix.substring(1);
    }

    static final class Getter {
        final String name;
        final Method method;
        final Field field;

        Getter(String name, Method method, Field field) {
            this.name = name;
            this.method = method;
            this.field = field;
        }

        Object get(Object target) throws Exception {
            return method != null ? method.invoke(target) : field.get(target);
        }
    }

    static final class Setter {
        final Method method;
        final Field field;
        final Type type;

        Setter(Method method, Field field) {
            this.method = method;
            this.field = field;
            this.type = method != null ? method.getGenericParameterTypes()[0] : field.getGenericType();
        }

        void set(Object target, Object value) throws Exception {
            if (method != null) {
                method.invoke(target, value);
            } else {
                field.set(target, value);
            }
        }

        Class<?> declaring() {
            return method != null ? method.getDeclaringClass() : field.getDeclaringClass();
        }
    }

    static final class ClassInfo {
        final List<Getter> getters = new ArrayList<>();
        final Map<String, Setter> setters = new HashMap<>();
        Constructor<?> constructor;
    }

    String jsonName(Class<?> cls, String implicit) {
        Map<String, String> renames = RENAMES.get(cls.getName());
        if (renames != null && renames.containsKey(implicit)) {
            return renames.get(implicit);
        }
        if (upperCamel && !implicit.isEmpty()) {
            return Character.toUpperCase(implicit.charAt(0)) + implicit.substring(1);
        }
        return implicit;
    }

    static void open(AccessibleObject member) {
        try {
            member.setAccessible(true);
        } catch (RuntimeException e) {
            // A JDK class's member: its public API still works without it.
        }
    }

    ClassInfo info(Class<?> cls) {
        ClassInfo info = infos.get(cls);
        if (info == null) {
            info = inspect(cls);
            infos.put(cls, info);
        }
        return info;
    }

    private ClassInfo inspect(Class<?> cls) {
        ClassInfo info = new ClassInfo();
        List<Class<?>> chain = new ArrayList<>();
        for (Class<?> c = cls; c != null && c != Object.class; c = c.getSuperclass()) {
            chain.add(0, c);
        }
        // Output order: fields in declaration order (superclasses first), then properties
        // that only have a getter, as Jackson orders them.
        List<String> order = new ArrayList<>();
        Map<String, Field> publicFields = new LinkedHashMap<>();
        for (Class<?> c : chain) {
            for (Field f : c.getDeclaredFields()) {
                int mod = f.getModifiers();
                if (Modifier.isStatic(mod) || f.isSynthetic()) {
                    continue;
                }
                String name = jsonName(c, f.getName());
                if (!order.contains(name)) {
                    order.add(name);
                }
                if (Modifier.isPublic(mod) && !Modifier.isTransient(mod)) {
                    open(f);
                    publicFields.put(name, f);
                }
            }
        }
        Map<String, Getter> getters = new LinkedHashMap<>();
        for (Class<?> c : chain) {
            for (Method m : c.getDeclaredMethods()) {
                int mod = m.getModifiers();
                if (Modifier.isStatic(mod) || m.isBridge() || m.isSynthetic()) {
                    continue;
                }
                String n = m.getName();
                Class<?>[] params = m.getParameterTypes();
                if (params.length == 0 && Modifier.isPublic(mod) && m.getReturnType() != void.class) {
                    String implicit = null;
                    if (n.startsWith("get") && n.length() > 3) {
                        implicit = beanName(n.substring(3));
                    } else if (n.startsWith("is") && n.length() > 2 && m.getReturnType() == boolean.class) {
                        implicit = beanName(n.substring(2));
                    }
                    if (implicit != null) {
                        String name = jsonName(c, implicit);
                        Getter prev = getters.get(name);
                        // A getX beats an isX of the same name, as in Jackson.
                        if (prev == null || prev.method.getName().startsWith("is")
                                || prev.method.getDeclaringClass() != c) {
                            open(m);
                            getters.put(name, new Getter(name, m, null));
                        }
                    }
                } else if (params.length == 1 && n.startsWith("set") && n.length() > 3) {
                    String name = jsonName(c, beanName(n.substring(3)));
                    Setter prev = info.setters.get(name);
                    if (prev == null || prev.declaring() != c || preferred(m, c, name, prev)) {
                        open(m);
                        info.setters.put(name, new Setter(m, null));
                    }
                }
            }
        }
        for (Map.Entry<String, Field> e : publicFields.entrySet()) {
            getters.putIfAbsent(e.getKey(), new Getter(e.getKey(), null, e.getValue()));
            info.setters.putIfAbsent(e.getKey(), new Setter(null, e.getValue()));
        }
        for (String name : order) {
            Getter g = getters.remove(name);
            if (g != null) {
                info.getters.add(g);
            }
        }
        info.getters.addAll(getters.values());
        try {
            Constructor<?> c = cls.getDeclaredConstructor();
            open(c);
            info.constructor = c;
        } catch (NoSuchMethodException e) {
            info.constructor = null;
        }
        return info;
    }

    /** Of two setters of one name in one class, the one whose type is the field's. */
    private static boolean preferred(Method candidate, Class<?> c, String name, Setter prev) {
        try {
            Field f = c.getDeclaredField(name);
            return candidate.getParameterTypes()[0] == f.getType()
                    && prev.method != null && prev.method.getParameterTypes()[0] != f.getType();
        } catch (NoSuchFieldException e) {
            return false;
        }
    }

}
