package com.amazonaws.services.lambda.runtime;

/** The Amazon Cognito identity that authorised the request, if any. */
public interface CognitoIdentity {
    String getIdentityId();

    String getIdentityPoolId();
}
