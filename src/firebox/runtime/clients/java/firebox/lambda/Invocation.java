package firebox.lambda;

import com.amazonaws.services.lambda.runtime.Client;
import com.amazonaws.services.lambda.runtime.ClientContext;
import com.amazonaws.services.lambda.runtime.CognitoIdentity;
import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.LambdaLogger;
import java.util.Map;

/** The Context of one invocation, built from the headers of /next and the environment. */
final class Invocation implements Context {
    private final String requestId;
    private final long deadlineMs;
    private final String invokedArn;
    private final String traceId;
    private final CognitoIdentity identity;
    private final ClientContext clientContext;
    private final Main.Environment env;
    private final LambdaLogger logger;

    Invocation(RuntimeApi.Response next, Main.Environment env, LambdaLogger logger) {
        this.requestId = next.header("Lambda-Runtime-Aws-Request-Id");
        String deadline = next.header("Lambda-Runtime-Deadline-Ms");
        this.deadlineMs = deadline == null ? 0 : Long.parseLong(deadline);
        this.invokedArn = next.header("Lambda-Runtime-Invoked-Function-Arn");
        this.traceId = next.header("Lambda-Runtime-Trace-Id");
        this.identity = identity(next.header("Lambda-Runtime-Cognito-Identity"));
        this.clientContext = clientContext(next.header("Lambda-Runtime-Client-Context"));
        this.env = env;
        this.logger = logger;
    }

    String traceId() {
        return traceId;
    }

    public String getAwsRequestId() {
        return requestId;
    }

    public String getLogGroupName() {
        return env.logGroup;
    }

    public String getLogStreamName() {
        return env.logStream;
    }

    public String getFunctionName() {
        return env.functionName;
    }

    public String getFunctionVersion() {
        return env.functionVersion;
    }

    public String getInvokedFunctionArn() {
        return invokedArn;
    }

    public CognitoIdentity getIdentity() {
        return identity;
    }

    public ClientContext getClientContext() {
        return clientContext;
    }

    public int getRemainingTimeInMillis() {
        long delta = deadlineMs - System.currentTimeMillis();
        return delta > 0 ? (int) Math.min(delta, Integer.MAX_VALUE) : 0;
    }

    public int getMemoryLimitInMB() {
        return env.memoryMb;
    }

    public LambdaLogger getLogger() {
        return logger;
    }

    public String getXrayTraceId() {
        return traceId;
    }

    public String toString() {
        return "LambdaContext{awsRequestId=" + requestId + ", functionName=" + env.functionName + "}";
    }

    // --- the optional parts, parsed from their JSON headers ----------------------------

    private static Map<?, ?> object(String json) {
        if (json == null || json.isEmpty()) {
            return null;
        }
        try {
            Object tree = Json.parse(json);
            return tree instanceof Map ? (Map<?, ?>) tree : null;
        } catch (RuntimeException e) {
            return null;
        }
    }

    private static String text(Map<?, ?> m, String key) {
        Object v = m == null ? null : m.get(key);
        return v == null ? null : v.toString();
    }

    @SuppressWarnings("unchecked")
    private static Map<String, String> strings(Object v) {
        if (!(v instanceof Map)) {
            return null;
        }
        Map<String, Object> m = (Map<String, Object>) v;
        Map<String, String> out = new java.util.LinkedHashMap<>();
        for (Map.Entry<String, Object> e : m.entrySet()) {
            out.put(e.getKey(), e.getValue() == null ? null : e.getValue().toString());
        }
        return out;
    }

    private static CognitoIdentity identity(String json) {
        Map<?, ?> m = object(json);
        if (m == null) {
            return null;
        }
        String id = text(m, "cognitoIdentityId");
        String pool = text(m, "cognitoIdentityPoolId");
        return new CognitoIdentity() {
            public String getIdentityId() {
                return id;
            }

            public String getIdentityPoolId() {
                return pool;
            }
        };
    }

    private static ClientContext clientContext(String json) {
        Map<?, ?> m = object(json);
        if (m == null) {
            return null;
        }
        Map<?, ?> c = m.get("client") instanceof Map ? (Map<?, ?>) m.get("client") : null;
        Client client = c == null ? null : new Client() {
            public String getInstallationId() {
                return text(c, "installation_id");
            }

            public String getAppTitle() {
                return text(c, "app_title");
            }

            public String getAppVersionName() {
                return text(c, "app_version_name");
            }

            public String getAppVersionCode() {
                return text(c, "app_version_code");
            }

            public String getAppPackageName() {
                return text(c, "app_package_name");
            }
        };
        Map<String, String> custom = strings(m.get("custom"));
        Map<String, String> environment = strings(m.get("env"));
        return new ClientContext() {
            public Client getClient() {
                return client;
            }

            public Map<String, String> getCustom() {
                return custom;
            }

            public Map<String, String> getEnvironment() {
                return environment;
            }
        };
    }
}
