package com.amazonaws.services.lambda.runtime.logging;

/** Log levels of LambdaLogger; UNDEFINED is what the one-argument log methods use. */
public enum LogLevel {
    UNDEFINED,
    TRACE,
    DEBUG,
    INFO,
    WARN,
    ERROR,
    FATAL;

    public static LogLevel fromString(String logLevel) {
        try {
            return LogLevel.valueOf(logLevel.toUpperCase());
        } catch (Exception e) {
            throw new IllegalArgumentException("Invalid log level: '" + logLevel
                    + "' expected one of [TRACE, DEBUG, INFO, WARN, ERROR, FATAL]");
        }
    }
}
