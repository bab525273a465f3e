package com.amazonaws.services.lambda.runtime;

/** A flag log4j2's Lambda appender sets; kept for binary compatibility. */
public final class LambdaRuntimeInternal {
    private static boolean useLog4jAppender;

    private LambdaRuntimeInternal() {}

    public static void setUseLog4jAppender(boolean useLog4j) {
        useLog4jAppender = useLog4j;
    }

    public static boolean getUseLog4jAppender() {
        return useLog4jAppender;
    }
}
