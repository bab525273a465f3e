package com.amazonaws.services.lambda.runtime;

/** What a handler learns about its invocation and environment. */
public interface Context {
    String getAwsRequestId();

    String getLogGroupName();

    String getLogStreamName();

    String getFunctionName();

    String getFunctionVersion();

    String getInvokedFunctionArn();

    CognitoIdentity getIdentity();

    ClientContext getClientContext();

    int getRemainingTimeInMillis();

    int getMemoryLimitInMB();

    LambdaLogger getLogger();

    default String getTenantId() {
        return null;
    }

    default String getXrayTraceId() {
        return null;
    }
}
