package com.amazonaws.services.lambda.runtime;

/** The function's logger, for code that has no Context at hand. The runtime client replaces
 * the default (plain stdout) with its own when it starts. */
public final class LambdaRuntime {
    private static volatile LambdaLogger logger = new LambdaLogger() {
        public void log(String message) {
            System.out.print(message);
        }

        public void log(byte[] message) {
            System.out.write(message, 0, message.length);
        }
    };

    private LambdaRuntime() {}

    public static LambdaLogger getLogger() {
        return logger;
    }
}
