package com.amazonaws.services.lambda.runtime;

/** The mobile client that called the function (Firebox's copy of the documented interface). */
public interface Client {
    String getInstallationId();

    String getAppTitle();

    String getAppVersionName();

    String getAppVersionCode();

    String getAppPackageName();
}
